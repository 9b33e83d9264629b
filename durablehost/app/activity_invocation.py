"""Call activity functions the way the Functions Python worker does.

Activities get their input decoded by the SDK's own `activityTrigger` converter and
their result encoded by it, so custom-object serialisation behaves as on Azure. Sync
functions run in worker threads (as the worker runs them): `call_sync_activity` does the
whole call there, decoding and encoding included; async ones run on the loop through
`call_async_activity`. Either may happen in the host process or in a worker process
(durablehost.workers): an `ActivityCall` is what travels there, an `ActivityOutcome` what
comes back.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.meta import Datum

from durablehost.app.invocation import InvocationContext, declares_context
from durablehost.app.loader import FunctionInfo

__all__ = [
    "ActivityCall",
    "ActivityFailure",
    "ActivityOutcome",
    "call_async_activity",
    "call_sync_activity",
    "unknown_activity",
]


@dataclass(frozen=True, slots=True)
class ActivityFailure:
    """An activity raised: the TaskFailed reason and details (traceback)."""

    reason: str
    details: str = field(default="")


# An activity's result as JSON text, or its failure.
ActivityOutcome = str | ActivityFailure


@dataclass(frozen=True, slots=True)
class ActivityCall:
    """One activity to run: `key` is the caller's handle for its outcome; `instance_id`
    names the orchestration that asked for it (for logs)."""

    key: int
    name: str
    input_json: str | None
    instance_id: str


def unknown_activity(name: str) -> ActivityFailure:
    """The failure of a call to an activity the app does not define."""
    return ActivityFailure(f"The activity function '{name}' doesn't exist in this app.")


def call_sync_activity(info: FunctionInfo, input_json: str | None) -> str | ActivityFailure:
    """Run a sync activity in the calling thread; its result as JSON text, or the failure.
    The traceback of a failure is formatted here, from the user's own frames."""
    kwargs = _arguments(info, input_json)
    if isinstance(kwargs, ActivityFailure):
        return kwargs
    try:
        result = info.user_function(**kwargs)
    except Exception as exc:  # the user's failure becomes TaskFailed, never a host crash
        return _failure(info, exc)
    return _encode(info, result)


async def call_async_activity(info: FunctionInfo, input_json: str | None) -> str | ActivityFailure:
    """Run an async activity on the running loop; its result as JSON text, or the failure."""
    kwargs = _arguments(info, input_json)
    if isinstance(kwargs, ActivityFailure):
        return kwargs
    try:
        result = await info.user_function(**kwargs)
    except Exception as exc:
        return _failure(info, exc)
    return _encode(info, result)


def _arguments(info: FunctionInfo, input_json: str | None) -> dict[str, Any] | ActivityFailure:
    converter = func.get_binding_registry().get("activityTrigger")
    try:
        value = converter.decode(
            Datum(type="json", value=input_json or "null"), trigger_metadata={}
        )
    except Exception as exc:
        return _failure(info, exc)
    kwargs: dict[str, Any] = {info.trigger_param: value}
    if declares_context(info):
        kwargs["context"] = InvocationContext(info.function_name, _function_directory(info))
    return kwargs


def _encode(info: FunctionInfo, result: Any) -> str | ActivityFailure:
    converter = func.get_binding_registry().get("activityTrigger")
    try:
        return str(converter.encode(result, expected_type=None).value)
    except Exception as exc:
        return _failure(info, exc)


def _failure(info: FunctionInfo, exc: BaseException) -> ActivityFailure:
    tb = exc.__traceback__
    # Skip this module's frame: the user's code is what the traceback is about.
    frames = tb.tb_next if tb is not None and tb.tb_next is not None else tb
    return ActivityFailure(
        reason=f"Activity function '{info.name}' failed: {type(exc).__name__}: {exc}",
        details="".join(traceback.format_exception(type(exc), exc, frames)),
    )


def _function_directory(info: FunctionInfo) -> str:
    code = getattr(info.user_function, "__code__", None)
    return str(Path(code.co_filename).parent) if code is not None else ""
