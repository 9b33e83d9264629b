"""Import a Python v2 (decorator model) Function App and index its functions.

Like the Functions Python worker: the app directory goes on sys.path, its
`function_app.py` is imported, and the one module-level `FunctionRegister`
(FunctionApp, DFApp, Blueprint-composed app) found there is indexed. A folder without
`function_app.py` is handed to `v1_loader` (function.json folders), as the worker falls
back to the host's function.json indexing.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durablehost.errors import AppLoadError

__all__ = ["FunctionIndex", "FunctionInfo", "FunctionNames", "index_app", "load_app"]

log = logging.getLogger(__name__)

# Trigger types as the decorators spell them; the extension's aliases are read from the
# trigger's own fields (orchestration=, activity=, entity_name=).
HTTP_TRIGGER = "httpTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
TIMER_TRIGGER = "timerTrigger"
QUEUE_TRIGGER = "queueTrigger"
BLOB_TRIGGER = "blobTrigger"
DURABLE_CLIENT = "durableClient"


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """One indexed function.

    `name` is the name the runtime registers it under: the alias for orchestrators,
    activities and entities when one was given, else the function name.
    """

    name: str
    function_name: str
    trigger_type: str
    trigger: Any
    bindings: tuple[Any, ...]
    user_function: Callable[..., Any]

    @property
    def trigger_param(self) -> str:
        """The parameter name the trigger value is passed under."""
        return str(self.trigger.name)

    # Read on every activity dispatch: worked out once (inspect unwraps the function).
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.user_function))

    def binding_of_type(self, binding_type: str) -> Any | None:
        """The first binding of this type (e.g. 'durableClient'), or None."""
        for binding in self.bindings:
            if getattr(binding, "type", None) == binding_type:
                return binding
        return None


class FunctionNames(MutableMapping[str, FunctionInfo]):
    """Functions by name, looked up case-insensitively as the Functions runtime does
    (call_activity("Say_Hello") finds say_hello); iteration gives registered names."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, FunctionInfo]] = {}

    def __getitem__(self, name: str) -> FunctionInfo:
        return self._items[name.casefold()][1]

    def __setitem__(self, name: str, info: FunctionInfo) -> None:
        self._items[name.casefold()] = (name, info)

    def __delitem__(self, name: str) -> None:
        del self._items[name.casefold()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._items

    def __iter__(self) -> Iterator[str]:
        return (registered for registered, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"FunctionNames({sorted(self)})"


@dataclass(slots=True)
class FunctionIndex:
    """Every function of the app, grouped by what drives it."""

    orchestrators: FunctionNames = field(default_factory=FunctionNames)
    activities: FunctionNames = field(default_factory=FunctionNames)
    entities: FunctionNames = field(default_factory=FunctionNames)
    http: list[FunctionInfo] = field(default_factory=list)
    timers: list[FunctionInfo] = field(default_factory=list)
    queues: list[FunctionInfo] = field(default_factory=list)  # queue-triggered
    blobs: list[FunctionInfo] = field(default_factory=list)  # blob-triggered
    unsupported: list[FunctionInfo] = field(default_factory=list)
    app: Any = None
    # "v2" (function_app.py) or "v1" (function.json folders).
    programming_model: str = "v2"
    # Functions that could not be loaded (v1 only): name -> why. The rest still run, as
    # the Functions host runs an app with some functions in error.
    errors: dict[str, str] = field(default_factory=dict)

    def register(self, info: FunctionInfo) -> None:
        """File `info` under what drives it; raises AppLoadError for a duplicate name."""
        registry: FunctionNames | None = {
            ORCHESTRATION_TRIGGER: self.orchestrators,
            ACTIVITY_TRIGGER: self.activities,
            ENTITY_TRIGGER: self.entities,
        }.get(info.trigger_type)
        if registry is not None:
            if info.name in registry:
                raise AppLoadError(f"two functions are registered as '{info.name}'")
            registry[info.name] = info
        elif info.trigger_type == HTTP_TRIGGER:
            self.http.append(info)
        elif info.trigger_type == TIMER_TRIGGER:
            self.timers.append(info)
        elif info.trigger_type == QUEUE_TRIGGER:
            self.queues.append(info)
        elif info.trigger_type == BLOB_TRIGGER:
            self.blobs.append(info)
        else:
            log.warning(
                "function %s has a %s trigger, which durablehost does not run",
                info.function_name,
                info.trigger_type,
            )
            self.unsupported.append(info)


def load_app(app_dir: Path | str, module_name: str = "function_app") -> FunctionIndex:
    """Import `<app_dir>/function_app.py` with app_dir on sys.path and index it.

    Without that file, the folder is loaded as a v1 app (subfolders with function.json);
    a folder in neither model raises AppLoadError saying what was looked for.
    """
    # Imported here: v1_loader builds on this module's FunctionInfo and FunctionIndex.
    from durablehost.app import v1_loader

    app_path = Path(app_dir).resolve()
    script = app_path / f"{module_name}.py"
    if not script.is_file():
        return v1_loader.load_v1_app(app_path, v2_script=script)
    v1_loader.warn_if_function_json_ignored(app_path, script)
    if str(app_path) not in sys.path:
        sys.path.insert(0, str(app_path))
    try:
        if module_name in sys.modules and _module_file(sys.modules[module_name]) == script:
            module = sys.modules[module_name]
        else:
            spec = importlib.util.spec_from_file_location(module_name, script)
            if spec is None or spec.loader is None:
                raise AppLoadError(f"cannot import {script}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    except AppLoadError:
        raise
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise AppLoadError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc
    return index_app(_find_app(module, script))


def _module_file(module: Any) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _find_app(module: Any, script: Path) -> Any:
    from azure.functions.decorators.function_app import FunctionRegister

    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    if not apps:
        raise AppLoadError(f"{script} defines no FunctionApp (e.g. app = func.FunctionApp())")
    if len({id(app) for app in apps}) > 1:
        raise AppLoadError(f"{script} defines more than one FunctionApp; keep exactly one")
    return apps[0]


# get_functions() raises on a second call for the same app (duplicate names), so the
# index is cached per app object.
_index_cache: dict[int, FunctionIndex] = {}


def index_app(app: Any) -> FunctionIndex:
    """Index an already-imported FunctionApp object."""
    cached = _index_cache.get(id(app))
    if cached is not None and cached.app is app:
        return cached
    try:
        functions = app.get_functions()
    except Exception as exc:
        raise AppLoadError(f"indexing the app failed: {exc}") from exc
    index = FunctionIndex(app=app)
    for function in functions:
        index.register(_describe(function))
    _index_cache[id(app)] = index
    return index


def _describe(function: Any) -> FunctionInfo:
    trigger = function.get_trigger()
    trigger_type = str(trigger.type)
    function_name = function.get_function_name()
    alias = None
    if trigger_type == ORCHESTRATION_TRIGGER:
        alias = getattr(trigger, "orchestration", None)
    elif trigger_type == ACTIVITY_TRIGGER:
        alias = getattr(trigger, "activity", None)
    elif trigger_type == ENTITY_TRIGGER:
        alias = getattr(trigger, "entity_name", None)
    return FunctionInfo(
        name=alias or function_name,
        function_name=function_name,
        trigger_type=trigger_type,
        trigger=trigger,
        bindings=tuple(function.get_bindings()),
        user_function=function.get_user_function(),
    )
