"""Load a Python v1 (function.json) Function App into the same index as a v2 app.

A v1 app is a folder whose subfolders each hold one function: a `function.json` with its
bindings and a script (`__init__.py` by default) with its entry point (`main` by default).
This follows the Functions host, which reads the metadata, and the Python worker, which
imports the script:

- every subfolder with a `function.json` is a function named after the folder; a folder
  name the host would refuse, unreadable JSON, no bindings, no trigger or a missing
  script puts that one function *in error*: it is reported at start and the others run;
- `scriptFile` is relative to the function folder; without it the folder's only file, or
  its `__init__.py`, is the script; it must be a `.py` file inside the app folder;
- the script is imported as a module of the `__app__` package rooted at the app folder
  (`Hello/__init__.py` is `__app__.Hello`), so `from ..shared_code import x` works, and the
  app folder is on sys.path, so `import shared_code.x` works too;
- the entry point's parameters must match the binding names (`context` may be extra), as
  the worker checks before it accepts a function;
- `orchestrationClient` is the older name of the `durableClient` binding; both work.

The bindings become `V1Binding` objects carrying the attribute names the v2 decorators
use (`route`, `methods`, `auth_level`, `schedule`, `run_on_startup`, `task_hub`...), so the
HTTP front, the timer service and the engine read both models the same way.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import multiprocessing
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durablehost.app.config import read_json_document
from durablehost.app.loader import (
    ACTIVITY_TRIGGER,
    DURABLE_CLIENT,
    ENTITY_TRIGGER,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    TIMER_TRIGGER,
    FunctionIndex,
    FunctionInfo,
)
from durablehost.errors import AppLoadError, ConfigError

__all__ = [
    "APP_PACKAGE",
    "FUNCTION_METADATA_FILE",
    "V1Binding",
    "V1FunctionError",
    "function_folders",
    "load_v1_app",
    "read_v1_function",
    "warn_if_function_json_ignored",
]

log = logging.getLogger(__name__)

FUNCTION_METADATA_FILE = "function.json"
# The package the Python worker imports v1 scripts under.
APP_PACKAGE = "__app__"
DEFAULT_SCRIPT = "__init__.py"
DEFAULT_ENTRY_POINT = "main"
# The Functions host's rule for function names (Utility.IsValidFunctionName).
_FUNCTION_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,127}$", re.IGNORECASE)
# function.json binding types that mean the same as a v2 decorator's.
_TYPE_ALIASES = {"orchestrationclient": DURABLE_CLIENT}
_KNOWN_TYPES = {
    known.lower(): known
    for known in (
        HTTP_TRIGGER,
        "http",
        TIMER_TRIGGER,
        ORCHESTRATION_TRIGGER,
        ACTIVITY_TRIGGER,
        ENTITY_TRIGGER,
        DURABLE_CLIENT,
    )
}


class V1FunctionError(AppLoadError):
    """One function of a v1 app cannot be loaded; the message says why and what to fix."""


@dataclass(frozen=True, slots=True)
class V1Binding:
    """One binding of a function.json, under the attribute names of the v2 decorators'
    binding objects (the host reads both through getattr)."""

    name: str
    type: str
    direction: str
    declared_type: str
    route: str | None = None
    methods: tuple[str, ...] | None = None
    auth_level: str | None = None
    schedule: str | None = None
    run_on_startup: bool = False
    use_monitor: bool | None = None
    task_hub: str | None = None
    connection_name: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, attribute: str) -> Any:
        # Any other function.json property under its v2 decorator name (queue_name reads
        # queueName), so a trigger kind added later reads v1 bindings without changes here.
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        camel = re.sub(r"_([a-z])", lambda found: found.group(1).upper(), attribute)
        data = object.__getattribute__(self, "data")
        if camel in data:
            return data[camel]
        raise AttributeError(f"function.json binding {self.name!r} has no {camel!r}")

    @property
    def is_trigger(self) -> bool:
        """Whether this binding is the function's trigger (its type ends in Trigger)."""
        return self.type.lower().endswith("trigger")


def function_folders(app_dir: Path) -> list[Path]:
    """The subfolders of `app_dir` holding a function.json, by name."""
    if not app_dir.is_dir():
        return []
    return sorted(
        (entry for entry in app_dir.iterdir() if (entry / FUNCTION_METADATA_FILE).is_file()),
        key=lambda entry: entry.name,
    )


def warn_if_function_json_ignored(app_dir: Path, v2_script: Path) -> None:
    """Log that function.json folders are ignored beside function_app.py: the worker
    indexes function_app.py when it exists and the host then skips function.json."""
    ignored = [folder.name for folder in function_folders(app_dir)]
    if ignored:
        log.warning(
            "%s exists, so the app runs in the v2 (decorator) model and the function.json "
            "folders %s are ignored, as the Functions host ignores them; remove one of the two",
            v2_script.name,
            ", ".join(ignored),
        )


def load_v1_app(app_dir: Path, *, v2_script: Path | None = None) -> FunctionIndex:
    """Load every function folder of a v1 app; broken functions go to `index.errors`.

    Raises AppLoadError when the folder holds no function.json at all (naming what was
    looked for) or when no function could be loaded.
    """
    app_path = app_dir.resolve()
    folders = function_folders(app_path)
    if not folders:
        v2_name = v2_script.name if v2_script is not None else "function_app.py"
        raise AppLoadError(
            f"{app_path} holds no Function App: {v2_name} not found (the Python v2 "
            f"decorator model) and no subfolder has a {FUNCTION_METADATA_FILE} (the v1 "
            f"model); point --app at the folder with {v2_name} or with your function folders"
        )
    _install_app_package(app_path)
    index = FunctionIndex(programming_model="v1")
    for folder in folders:
        name = folder.name
        try:
            info = read_v1_function(folder, app_path)
            if info is None:
                continue
            index.register(info)
        except V1FunctionError as error:
            index.errors[name] = str(error)
            # Worker processes load the app again; the host process has said it already.
            level = logging.ERROR if multiprocessing.parent_process() is None else logging.DEBUG
            log.log(level, "Function '%s' is in error: %s", name, error)
    loaded = len(index.orchestrators) + len(index.activities) + len(index.entities)
    loaded += len(index.http) + len(index.timers) + len(index.unsupported)
    if not loaded and index.errors:
        details = "; ".join(f"{name}: {why}" for name, why in index.errors.items())
        raise AppLoadError(f"no function of the v1 app in {app_path} could be loaded: {details}")
    return index


def read_v1_function(folder: Path, app_dir: Path) -> FunctionInfo | None:
    """Read one function folder and import its entry point.

    Returns None for a function disabled in its function.json (`"disabled": true`);
    raises V1FunctionError saying what is wrong with it.
    """
    name = folder.name
    if not _FUNCTION_NAME_RE.match(name) or name.lower() == "host":
        raise V1FunctionError(
            f"'{name}' is not a valid function name: start with a letter, then letters, "
            "digits, '_' or '-' (128 at most)"
        )
    metadata_path = folder / FUNCTION_METADATA_FILE
    try:
        metadata = read_json_document(metadata_path)
    except ConfigError as error:
        raise V1FunctionError(str(error)) from None
    if not isinstance(metadata, dict):
        raise V1FunctionError(f"{metadata_path} must hold a JSON object")
    if metadata.get("disabled") is True:
        log.debug("function %s is disabled in its %s", name, FUNCTION_METADATA_FILE)
        return None
    bindings = _bindings(metadata, metadata_path)
    triggers = [binding for binding in bindings if binding.is_trigger]
    if len(triggers) != 1:
        found = "no trigger binding" if not triggers else f"{len(triggers)} trigger bindings"
        raise V1FunctionError(
            f"{metadata_path} declares {found}: a function needs exactly one (httpTrigger, "
            "timerTrigger, orchestrationTrigger, activityTrigger, entityTrigger...)"
        )
    script = _script_file(metadata, folder, app_dir)
    _install_app_package(app_dir)
    entry_point = metadata.get("entryPoint") or DEFAULT_ENTRY_POINT
    if not isinstance(entry_point, str):
        raise V1FunctionError(f"{metadata_path}: entryPoint must be a string")
    user_function = _import_entry_point(name, script, entry_point, app_dir)
    trigger = triggers[0]
    _check_parameters(name, user_function, bindings, script, entry_point)
    if trigger.type == ORCHESTRATION_TRIGGER and not hasattr(
        user_function, "orchestrator_function"
    ):
        raise V1FunctionError(
            f"{_relative(script, app_dir)}: {entry_point} is the entry point of an "
            f"orchestrationTrigger, so it must be an orchestrator handle: "
            f"{entry_point} = df.Orchestrator.create(your_generator_function)"
        )
    return FunctionInfo(
        name=name,
        function_name=name,
        trigger_type=trigger.type,
        trigger=trigger,
        bindings=tuple(bindings),
        user_function=user_function,
    )


def _bindings(metadata: Mapping[str, Any], path: Path) -> list[V1Binding]:
    raw_bindings = metadata.get("bindings")
    if not isinstance(raw_bindings, list) or not raw_bindings:
        raise V1FunctionError(f"{path}: at least one binding must be declared in 'bindings'")
    bindings = []
    for position, raw in enumerate(raw_bindings):
        where = f"{path} bindings[{position}]"
        if not isinstance(raw, dict):
            raise V1FunctionError(f"{where} must be a JSON object")
        bindings.append(_binding(raw, where))
    names = [binding.name.lower() for binding in bindings]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise V1FunctionError(f"{path}: binding names must be unique; repeated: {duplicates}")
    return bindings


def _binding(raw: Mapping[str, Any], where: str) -> V1Binding:
    name, declared_type, direction = raw.get("name"), raw.get("type"), raw.get("direction")
    for key, value in (("name", name), ("type", declared_type)):
        if not isinstance(value, str) or not value.strip():
            raise V1FunctionError(f"{where} needs a '{key}' string")
    assert isinstance(name, str) and isinstance(declared_type, str)
    if direction is None:
        direction = "in"
    if not isinstance(direction, str) or direction.lower() not in ("in", "out", "inout"):
        raise V1FunctionError(f"{where}: direction must be 'in', 'out' or 'inout'")
    # Binding types are case-insensitive to the host: the known ones get the spelling the
    # rest of durablehost compares against.
    binding_type = _TYPE_ALIASES.get(declared_type.lower(), declared_type)
    binding_type = _KNOWN_TYPES.get(binding_type.lower(), binding_type)
    methods = raw.get("methods")
    if methods is not None and (
        not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)
    ):
        raise V1FunctionError(f'{where}: methods must be a list of strings like ["get"]')
    route = raw.get("route")
    if route is not None and not isinstance(route, str):
        raise V1FunctionError(f"{where}: route must be a string")
    schedule = raw.get("schedule")
    if binding_type == TIMER_TRIGGER and not isinstance(schedule, str):
        raise V1FunctionError(f"{where}: a timerTrigger needs a 'schedule' string")
    use_monitor = raw.get("useMonitor")
    return V1Binding(
        name=name,
        type=binding_type,
        direction=direction.lower(),
        declared_type=declared_type,
        route=route,
        methods=tuple(m.lower() for m in methods) if methods else None,
        auth_level=str(raw["authLevel"]).lower() if raw.get("authLevel") else None,
        schedule=schedule if isinstance(schedule, str) else None,
        run_on_startup=raw.get("runOnStartup") is True,
        use_monitor=use_monitor if isinstance(use_monitor, bool) else None,
        task_hub=raw.get("taskHub") if isinstance(raw.get("taskHub"), str) else None,
        connection_name=_connection_name(raw),
        data=dict(raw),
    )


def _connection_name(raw: Mapping[str, Any]) -> str | None:
    for key in ("connectionName", "connection"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _script_file(metadata: Mapping[str, Any], folder: Path, app_dir: Path) -> Path:
    """The function's script, as the host determines its primary script file."""
    declared = metadata.get("scriptFile")
    if declared is not None:
        if not isinstance(declared, str) or not declared.strip():
            raise V1FunctionError(f"{folder / FUNCTION_METADATA_FILE}: scriptFile must be a path")
        script = (folder / declared).resolve()
        if not script.is_file():
            raise V1FunctionError(
                f"scriptFile '{declared}' in {_relative(folder, app_dir)}/"
                f"{FUNCTION_METADATA_FILE} does not exist (looked for {script})"
            )
    else:
        files = [
            entry
            for entry in folder.iterdir()
            if entry.is_file() and entry.name.lower() != FUNCTION_METADATA_FILE
        ]
        primary = files if len(files) == 1 else [f for f in files if f.name == DEFAULT_SCRIPT]
        if not primary:
            raise V1FunctionError(
                f"{_relative(folder, app_dir)} has no {DEFAULT_SCRIPT}: add one, or name the "
                f'script in {FUNCTION_METADATA_FILE} with "scriptFile"'
            )
        script = primary[0].resolve()
    if script.suffix != ".py":
        raise V1FunctionError(f"{script.name} is not a Python script (.py)")
    try:
        script.relative_to(app_dir)
    except ValueError:
        raise V1FunctionError(
            f"script {script} is outside the app folder {app_dir}; the worker imports only "
            "scripts inside it"
        ) from None
    return script


def _module_name(script: Path, app_dir: Path) -> str:
    """`__app__.<folders>.<module>`; an `__init__.py` is its folder's package itself."""
    parts = list(script.relative_to(app_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([APP_PACKAGE, *parts])


def _install_app_package(app_dir: Path) -> None:
    """Register `__app__` as a namespace package rooted at the app folder, and put the
    folder on sys.path, as the worker does before it loads v1 functions."""
    location = str(app_dir)
    if location not in sys.path:
        sys.path.insert(0, location)
    package = sys.modules.get(APP_PACKAGE)
    if package is not None and list(getattr(package, "__path__", [])) == [location]:
        return
    # Another app (an earlier in-process host) was loaded: its modules must not answer
    # for this one's.
    for module_name in [m for m in sys.modules if m.partition(".")[0] == APP_PACKAGE]:
        del sys.modules[module_name]
    spec = importlib.machinery.ModuleSpec(APP_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [location]
    sys.modules[APP_PACKAGE] = importlib.util.module_from_spec(spec)


def _import_entry_point(
    name: str, script: Path, entry_point: str, app_dir: Path
) -> Callable[..., Any]:
    module_name = _module_name(script, app_dir)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise V1FunctionError(
            f"importing {_relative(script, app_dir)} failed: {type(error).__name__}: "
            f"{error}{_where(error)}"
        ) from error
    found = getattr(module, entry_point, None)
    if found is None or not callable(found):
        raise V1FunctionError(
            f"function {entry_point}() is not present in {_relative(script, app_dir)}: define "
            f'it, or name the entry point in {name}/{FUNCTION_METADATA_FILE} with "entryPoint"'
        )
    return found


def _where(error: BaseException) -> str:
    """' (at file:line)' of the innermost frame outside importlib, if any."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if "importlib" not in frame.filename and frame.filename != __file__
    ]
    if isinstance(error, SyntaxError) and error.filename:
        return f" (at {error.filename}:{error.lineno})"
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _check_parameters(
    name: str,
    user_function: Callable[..., Any],
    bindings: list[V1Binding],
    script: Path,
    entry_point: str,
) -> None:
    """The worker's rule: every binding (but `$return`) is a parameter, every parameter
    (but `context`) a binding."""
    try:
        parameters = set(inspect.signature(user_function).parameters)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to compare
    declared = {binding.name for binding in bindings if binding.name != "$return"}
    missing_in_python = sorted(declared - parameters)
    if missing_in_python:
        raise V1FunctionError(
            f"the following parameters are declared in {FUNCTION_METADATA_FILE} but not in "
            f"Python ({script.name} {entry_point}()): {missing_in_python}"
        )
    extra_in_python = sorted(parameters - declared - {"context"})
    if extra_in_python:
        raise V1FunctionError(
            f"the following parameters are declared in Python ({script.name} {entry_point}()) "
            f"but not in {FUNCTION_METADATA_FILE}: {extra_in_python}"
        )


def _relative(path: Path, app_dir: Path) -> str:
    try:
        return path.relative_to(app_dir).as_posix()
    except ValueError:
        return str(path)
