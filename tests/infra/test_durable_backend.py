"""The Durable backend choice: one azd value (DURABLE_BACKEND) picks Azure Storage or the
Durable Task Scheduler, for the resources (main.bicep), the app settings (function-app.bicep)
and the package's host.json (the azd package hooks, infra/hooks/host_json_backend.py)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from operations.settings import SETTINGS
from tests.infra.app_settings import BACKENDS, FUNCTION_APP, app_settings_for_backend
from tests.infra.bicep_templates import InfraTemplates, accessor_path, load_infra

SCHEDULER = "modules/durable-task-scheduler.bicep"
IDENTITY = "modules/identity.bicep"
HOOK = Path(__file__).resolve().parents[2] / "infra" / "hooks" / "host_json_backend.py"
# Built-in role "Durable Task Data Contributor" (the same id in every tenant).
DURABLE_TASK_DATA_CONTRIBUTOR = "0ad04412-c4d5-4796-b79c-f76d14c8d402"
SCHEDULER_API_VERSION = "2025-11-01"
HOST_JSON_OVERRIDE = "AzureFunctionsJobHost__"


@pytest.fixture(scope="module")
def infra(repo_root: Path) -> InfraTemplates:
    """Every .bicep file under infra/, parsed."""
    return load_infra(repo_root / "infra")


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    """infra/hooks/host_json_backend.py, imported from its path (infra/ is no package)."""
    spec = importlib.util.spec_from_file_location("host_json_backend", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed_host_json(repo_root: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((repo_root / "host.json").read_text(encoding="utf-8"))
    return loaded


def _module_symbol(infra: InfraTemplates, relative_path: str) -> str:
    (symbol,) = infra.main.modules_using(relative_path)
    return symbol


def test_one_parameter_picks_the_backend_and_azure_storage_stays_the_default(
    infra: InfraTemplates, repo_root: Path
) -> None:
    parameter = infra.main.parameters["durableBackend"]
    allowed = next(d["argument"] for d in parameter["decorators"] if d["type"] == "allowed")
    assert allowed == list(BACKENDS)
    assert parameter["default"] == "azureStorage"
    sku = infra.main.parameters["durableTaskSchedulerSku"]
    assert next(d["argument"] for d in sku["decorators"] if d["type"] == "allowed") == [
        "Consumption",
        "Dedicated",
    ]
    # azd fills both from its environment (`azd env set DURABLE_BACKEND ...`).
    values = json.loads((repo_root / "infra" / "main.parameters.json").read_text())["parameters"]
    assert values["durableBackend"] == {"value": "${DURABLE_BACKEND=azureStorage}"}
    assert values["durableTaskSchedulerSku"] == {
        "value": "${DURABLE_TASK_SCHEDULER_SKU=Consumption}"
    }


def test_the_scheduler_is_deployed_only_for_its_backend_and_before_the_app(
    infra: InfraTemplates, repo_root: Path
) -> None:
    main = infra.main
    scheduler = _module_symbol(infra, SCHEDULER)
    condition = main.modules[scheduler]["config"]["condition"]
    assert main.variables[condition] == {
        "operator": {
            "type": "equals",
            "operands": {"operand_1": "durableBackend", "operand_2": "durableTaskScheduler"},
        }
    }
    identity = _module_symbol(infra, IDENTITY)
    assert accessor_path(main.module_argument(scheduler, "appPrincipalId")) == (
        identity,
        "outputs",
        "principalId",
    )
    # The task hub is the one host.json names, whichever backend runs it.
    hub = main.module_argument(scheduler, "taskHubName")
    hub_name = _committed_host_json(repo_root)["extensions"]["durableTask"]["hubName"]
    assert main.variables[hub] == hub_name
    # The app gets the endpoint from the scheduler it was granted access to, and starts after
    # the role assignment.
    function_app = _module_symbol(infra, FUNCTION_APP)
    assert main.module_argument(function_app, "durableBackend") == "durableBackend"
    endpoint = main.module_argument(function_app, "durableTaskSchedulerEndpoint")["operator"]
    assert endpoint["type"] == "conditional"
    assert endpoint["operands"]["condition"] == condition
    assert accessor_path(endpoint["operands"]["true_value"]) == (scheduler, "outputs", "endpoint")
    assert endpoint["operands"]["false_value"] == ""
    assert scheduler in main.module_body(function_app)["dependsOn"]


def test_scheduler_and_task_hub_use_the_ga_api_and_accept_callers(infra: InfraTemplates) -> None:
    module = infra.module(SCHEDULER)
    declared = module.tree["resources"]
    scheduler = module.resource("Microsoft.DurableTask/schedulers")
    task_hub = module.resource("Microsoft.DurableTask/schedulers/taskHubs")
    assert declared[scheduler.symbol]["api_version"] == SCHEDULER_API_VERSION
    assert declared[task_hub.symbol]["api_version"] == SCHEDULER_API_VERSION
    assert task_hub.body["parent"] == scheduler.symbol
    assert task_hub.body["name"] == "taskHubName"
    # An empty allow list refuses every caller, and Flex Consumption has no fixed outbound IP.
    assert scheduler.properties["ipAllowlist"] == "ipAllowlist"
    assert module.parameters["ipAllowlist"]["default"] == ["0.0.0.0/0"]
    sku = scheduler.properties["sku"]["operator"]["operands"]
    assert module.variables[sku["true_value"]] == {
        "name": "skuName",
        "capacity": "dedicatedCapacity",
    }
    assert module.variables[sku["false_value"]] == {"name": "skuName"}
    allowed = next(
        d["argument"] for d in module.parameters["skuName"]["decorators"] if d["type"] == "allowed"
    )
    assert allowed == ["Consumption", "Dedicated"]


def test_app_identity_holds_durable_task_data_contributor_on_the_task_hub(
    infra: InfraTemplates,
) -> None:
    module = infra.module(SCHEDULER)
    task_hub = module.resource("Microsoft.DurableTask/schedulers/taskHubs")
    assignments = {
        resource.symbol: resource
        for resource in module.resources("Microsoft.Authorization/roleAssignments")
    }
    app = next(a for a in assignments.values() if a.properties["principalId"] == "appPrincipalId")
    assert app.body["scope"] == task_hub.symbol
    assert app.properties["principalType"] == "ServicePrincipal"
    role = app.properties["roleDefinitionId"]["function"]["parameters"]
    assert role["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    assert module.variables[role["resource_name_1"]] == DURABLE_TASK_DATA_CONTRIBUTOR
    # The deterministic name keeps re-deployments from creating duplicates.
    assert app.body["name"]["function"]["type"] == "guid"
    # The developer's grant (the dashboard needs a data role) exists only with a principal.
    declared = module.tree["resources"]
    (developer,) = (symbol for symbol in assignments if symbol != app.symbol)
    assert "condition" in declared[developer]["config"]
    assert assignments[developer].body["scope"] == task_hub.symbol


def test_app_settings_per_backend(infra: InfraTemplates) -> None:
    template = infra.module(FUNCTION_APP)
    storage = app_settings_for_backend(template, "azureStorage")
    scheduler = app_settings_for_backend(template, "durableTaskScheduler")
    # The scheduler backend adds its connection and changes nothing else: host storage stays on
    # AzureWebJobsStorage__* (keys, leases, timers) and the app's own settings are the same.
    assert set(scheduler) - set(storage) == {"DURABLE_TASK_SCHEDULER_CONNECTION_STRING"}
    assert {name: value for name, value in scheduler.items() if name in storage} == storage
    assert not [name for name in storage if name.startswith("DURABLE_TASK_SCHEDULER")]
    connection = scheduler["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"]
    assert connection == (
        "Endpoint=${durableTaskSchedulerEndpoint};Authentication=ManagedIdentity;"
        "ClientID=${identity.properties.clientId}"
    )
    identity = template.resource_by_symbol("identity")
    assert identity.type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    for backend in BACKENDS:
        # The backend lives in the package's host.json, never in overrides the scale controller
        # cannot see (see infra/hooks/host_json_backend.py).
        settings = app_settings_for_backend(template, backend)
        assert not [name for name in settings if name.startswith(HOST_JSON_OVERRIDE)]


def test_every_scheduler_setting_is_read_by_the_package_host_json(
    infra: InfraTemplates, hook: ModuleType, repo_root: Path
) -> None:
    scheduler = app_settings_for_backend(infra.module(FUNCTION_APP), "durableTaskScheduler")
    host_json = hook.scheduler_host_json(_committed_host_json(repo_root))
    provider = host_json["extensions"]["durableTask"]["storageProvider"]
    assert provider["connectionStringName"] in scheduler
    declared = {setting.name for setting in SETTINGS}
    read_by_host = {provider["connectionStringName"]}
    new = set(scheduler) - set(app_settings_for_backend(infra.module(FUNCTION_APP), "azureStorage"))
    assert new <= read_by_host | declared


def test_committed_host_json_is_the_azure_storage_backend_on_a_bundle_with_azure_managed(
    repo_root: Path, hook: ModuleType
) -> None:
    host_json = _committed_host_json(repo_root)
    assert "storageProvider" not in host_json["extensions"]["durableTask"]
    bundle = host_json["extensionBundle"]
    assert bundle["id"] == hook.GA_BUNDLE_ID
    # "[4.*, 5.0.0)": Azure resolves the newest 4.x, which carries azureManaged (>= 4.30.0).
    match = re.fullmatch(r"\[(\d+)\.[^,]*,\s*(\d+)\.0\.0\)", bundle["version"])
    assert match and (match[1], match[2]) == ("4", "5"), bundle["version"]


def test_hook_leaves_host_json_alone_for_azure_storage(
    tmp_path: Path, repo_root: Path, hook: ModuleType
) -> None:
    committed = (repo_root / "host.json").read_bytes()
    (tmp_path / "host.json").write_bytes(committed)
    assert "unchanged" in hook.apply(tmp_path, "azureStorage")
    assert (tmp_path / "host.json").read_bytes() == committed
    assert not hook.restore(tmp_path)


def test_hook_writes_the_scheduler_into_host_json_and_restores_it(
    tmp_path: Path, repo_root: Path, hook: ModuleType
) -> None:
    committed = (repo_root / "host.json").read_bytes()
    (tmp_path / "host.json").write_bytes(committed)
    hook.apply(tmp_path, "durableTaskScheduler")
    packaged = json.loads((tmp_path / "host.json").read_text())
    durable = packaged["extensions"]["durableTask"]
    assert durable["storageProvider"] == {
        "type": "azureManaged",
        "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    }
    assert packaged["extensionBundle"]["version"] == "[4.30.0, 5.0.0)"
    # Everything else, the hub name included, is the committed host.json.
    original = json.loads(committed)
    assert durable["hubName"] == original["extensions"]["durableTask"]["hubName"]
    without_backend = json.loads(json.dumps(packaged))
    del without_backend["extensions"]["durableTask"]["storageProvider"]
    without_backend["extensionBundle"] = original["extensionBundle"]
    assert without_backend == original
    # A second apply (a packaging run that died before postpackage) starts from the committed file.
    hook.apply(tmp_path, "durableTaskScheduler")
    assert json.loads((tmp_path / "host.json").read_text()) == packaged
    assert hook.restore(tmp_path)
    assert (tmp_path / "host.json").read_bytes() == committed
    # Switching back to Azure Storage also restores a leftover.
    hook.apply(tmp_path, "durableTaskScheduler")
    hook.apply(tmp_path, "azureStorage")
    assert (tmp_path / "host.json").read_bytes() == committed


def test_hook_refuses_an_unknown_backend_naming_the_choices(
    tmp_path: Path, hook: ModuleType
) -> None:
    with pytest.raises(ValueError, match=r"use one of azureStorage, durableTaskScheduler"):
        hook.apply(tmp_path, "netherite")
    result = subprocess.run(
        [sys.executable, str(HOOK), "apply"],
        env={"DURABLE_BACKEND": "durabletaskscheduler"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "azd env set DURABLE_BACKEND durableTaskScheduler" in result.stderr
    usage = subprocess.run(
        [sys.executable, str(HOOK)], capture_output=True, text=True, timeout=60, check=False
    )
    assert usage.returncode == 2 and "apply|restore" in usage.stderr


def test_azure_yaml_runs_the_hook_around_packaging(repo_root: Path) -> None:
    project = yaml.safe_load((repo_root / "azure.yaml").read_text())
    hooks: Mapping[str, Any] = project["services"]["api"]["hooks"]
    for hook_name, command in (("prepackage", "apply"), ("postpackage", "restore")):
        for platform in ("posix", "windows"):
            run = hooks[hook_name][platform]["run"]
            assert run.endswith(f"infra/hooks/host_json_backend.py {command}"), run
    # azd reads .azure/ for its environments; the backup lives there and is never packaged.
    assert ".azure/" in (repo_root / ".funcignore").read_text().splitlines()
