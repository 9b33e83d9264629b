"""Run by the clean venv's interpreter inside the deployable package; prints JSON.

    python -I package_probe.py PACKAGE_DIR imports   # every import, resolved or not
    python -I package_probe.py PACKAGE_DIR index     # import function_app, index functions

Standard library only: the clean venv holds requirements.txt and nothing else. The `index`
mode does what the Python worker does on Azure: put the script root on sys.path, import
function_app, find its one FunctionApp and ask it for its functions and their bindings.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

RESULT_MARKER = "PACKAGE-PROBE-RESULT"
SKIPPED_DIRS = {"__pycache__", ".python_packages"}


def _python_files(root: Path) -> list[Path]:
    return sorted(
        path for path in root.rglob("*.py") if not SKIPPED_DIRS & set(path.relative_to(root).parts)
    )


def _local_top_level_names(root: Path) -> set[str]:
    names = {path.stem for path in root.glob("*.py")}
    names |= {path.name for path in root.iterdir() if path.is_dir() and any(path.rglob("*.py"))}
    return names


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def _resolves(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _requirement_names(requirements: Path) -> list[str]:
    names = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
        if match:
            names.append(match.group(1))
    return names


def _modules_of(distribution: str) -> set[str]:
    modules = set()
    for file in importlib.metadata.distribution(distribution).files or ():
        parts = file.parts
        if file.suffix == ".py" and not parts[0].endswith((".dist-info", ".data")):
            dotted = ".".join((*parts[:-1], file.stem))
            modules.add(dotted.removesuffix(".__init__"))
    return modules


def probe_imports(root: Path) -> dict[str, Any]:
    """Every absolute import in the package, whether it resolves, and who provides it."""
    local = _local_top_level_names(root)
    third_party: dict[str, list[str]] = {}
    unresolved = []
    for path in _python_files(root):
        for module, line in _imports(path):
            top = module.split(".")[0]
            if top in local or top in sys.stdlib_module_names:
                continue
            where = f"{path.relative_to(root).as_posix()}:{line}"
            third_party.setdefault(module, []).append(where)
            if not _resolves(module):
                unresolved.append({"module": module, "where": where})
    used_by_requirement = {}
    for requirement in _requirement_names(root / "requirements.txt"):
        provided = _modules_of(requirement)
        used_by_requirement[requirement] = sorted(
            module
            for module in third_party
            if any(module == m or module.startswith(f"{m}.") for m in provided)
        )
    return {
        "third_party": third_party,
        "unresolved": unresolved,
        "used_by_requirement": used_by_requirement,
    }


def _where_in_package(error: BaseException, root: Path) -> str:
    """' (at operations/api.py:12)' for the deepest traceback frame inside the package."""
    where = ""
    traceback = error.__traceback__
    while traceback is not None:
        filename = Path(traceback.tb_frame.f_code.co_filename)
        if filename.is_relative_to(root):
            where = f" (at {filename.relative_to(root).as_posix()}:{traceback.tb_lineno})"
        traceback = traceback.tb_next
    return where


def probe_index(root: Path) -> dict[str, Any]:
    """Import function_app as the worker does and index every function it registers."""
    import azure.functions as func

    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("function_app")
    except Exception as error:  # report any import failure as one actionable line
        raise SystemExit(
            "importing function_app failed with only requirements.txt installed and "
            f".funcignore applied: {type(error).__name__}: {error}"
            f"{_where_in_package(error, root)}"
        ) from error
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise SystemExit(f"function_app.py must define exactly one FunctionApp, found {len(apps)}")
    functions = []
    for function in apps[0].get_functions():
        trigger = function.get_trigger()
        functions.append(
            {
                "name": function.get_function_name(),
                "trigger": trigger.get_binding_name() if trigger else None,
                "bindings": [json.loads(raw) for raw in function.get_raw_bindings()],
            }
        )
    return {"functions": functions}


def main() -> None:
    """Entry point: print the probe's result as JSON on stdout."""
    root = Path(sys.argv[1]).resolve()
    mode = sys.argv[2]
    result = probe_imports(root) if mode == "imports" else probe_index(root)
    # A marker line, because importing the app may print to stdout too.
    print(f"{RESULT_MARKER} {json.dumps(result)}")


if __name__ == "__main__":
    main()
