"""Write the Durable backend chosen for Azure into the package's host.json, and undo it.

    python3 infra/hooks/host_json_backend.py apply     # azd prepackage hook
    python3 infra/hooks/host_json_backend.py restore   # azd postpackage hook

`apply` reads DURABLE_BACKEND (the azd environment value that also feeds main.bicep's
durableBackend). With `durableTaskScheduler` it backs host.json up under .azure/ and adds
extensions.durableTask.storageProvider = azureManaged, reading the connection from the
DURABLE_TASK_SCHEDULER_CONNECTION_STRING app setting that infra/ sets for that backend. With
`azureStorage` (the default) host.json stays as committed. `restore` puts the committed
host.json back; `apply` also does so first, so a packaging run that died halfway heals itself.

Why host.json and not AzureFunctionsJobHost__extensions__durableTask__storageProvider__* app
settings: the Functions host honours those overrides, but the platform's scale controller
takes the durableTask section from the package's host.json file (azure-functions-host,
FunctionsSyncManager.ReadDurableTaskConfig; azure-functions-durable-extension issues 2622
and 2803). With overrides alone it would watch Azure Storage queues while the work waits in
the scheduler, and never wake or scale out the durable functions on Flex Consumption.

Standard library only: azd runs it with whatever python3 is on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKEND_VARIABLE = "DURABLE_BACKEND"
BACKENDS = ("azureStorage", "durableTaskScheduler")
CONNECTION_SETTING = "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"
# The first Microsoft.Azure.Functions.ExtensionBundle carrying the azureManaged provider
# (Microsoft.Azure.WebJobs.Extensions.DurableTask.AzureManaged) is 4.30.0.
MINIMUM_BUNDLE = "4.30.0"
GA_BUNDLE_ID = "Microsoft.Azure.Functions.ExtensionBundle"


def backup_path(root: Path) -> Path:
    """Where the committed host.json waits during packaging (.azure/ is never packaged)."""
    return root / ".azure" / "host.json.before-package"


def scheduler_host_json(host_json: dict[str, Any]) -> dict[str, Any]:
    """host.json with the Durable Task Scheduler as the durable backend (a new dict)."""
    updated = json.loads(json.dumps(host_json))
    durable = updated.setdefault("extensions", {}).setdefault("durableTask", {})
    durable["storageProvider"] = {
        "type": "azureManaged",
        "connectionStringName": CONNECTION_SETTING,
    }
    bundle = updated.get("extensionBundle") or {}
    if bundle.get("id") == GA_BUNDLE_ID:
        # Older 4.x bundles do not know azureManaged; the host would refuse the provider.
        bundle["version"] = f"[{MINIMUM_BUNDLE}, 5.0.0)"
    return updated


def restore(root: Path) -> bool:
    """Put the committed host.json back if a backup is waiting; True when one was."""
    backup = backup_path(root)
    if not backup.exists():
        return False
    shutil.move(backup, root / "host.json")
    return True


def apply(root: Path, backend: str) -> str:
    """Make root/host.json name the backend; returns what was done, for the hook's log."""
    if backend not in BACKENDS:
        raise ValueError(
            f"{BACKEND_VARIABLE}={backend!r} is not a backend; use one of {', '.join(BACKENDS)} "
            f"(azd env set {BACKEND_VARIABLE} durableTaskScheduler)"
        )
    restore(root)
    if backend == "azureStorage":
        return "host.json unchanged: Durable Functions uses the Azure Storage backend"
    host_json_path = root / "host.json"
    committed = json.loads(host_json_path.read_text(encoding="utf-8"))
    backup = backup_path(root)
    backup.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(host_json_path, backup)
    host_json_path.write_text(
        json.dumps(scheduler_host_json(committed), indent=2) + "\n", encoding="utf-8"
    )
    return (
        "host.json now uses the Durable Task Scheduler (storageProvider azureManaged, "
        f"connection {CONNECTION_SETTING}); the postpackage hook restores it"
    )


def main(argv: list[str]) -> int:
    """Entry point for the azd hooks; exit status 2 on a bad command or backend."""
    command = argv[1] if len(argv) > 1 else ""
    try:
        if command == "apply":
            print(apply(REPO_ROOT, os.environ.get(BACKEND_VARIABLE) or "azureStorage"))
        elif command == "restore":
            restored = restore(REPO_ROOT)
            print("host.json restored" if restored else "host.json was not changed")
        else:
            print(f"usage: {Path(argv[0]).name} apply|restore", file=sys.stderr)
            return 2
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
