"""Call user functions the way the Functions Python worker does.

Activities get their input decoded by the SDK's own `activityTrigger` converter and
their result encoded by it, so custom-object serialisation behaves as on Azure. Sync
functions run in a thread pool (as the worker runs them), async ones on the loop.
"""

from __future__ import annotations

import asyncio
import traceback
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.meta import Datum

from durablehost.invocation import InvocationContext, declares_context
from durablehost.loader import FunctionInfo

__all__ = ["ActivityFailure", "invoke_activity"]


@dataclass(frozen=True, slots=True)
class ActivityFailure:
    """An activity raised: the TaskFailed reason and details (traceback)."""

    reason: str
    details: str = field(default="")


async def invoke_activity(
    info: FunctionInfo, input_json: str | None, pool: Executor | None = None
) -> str | ActivityFailure:
    """Run an activity; returns its result as JSON text, or the failure."""
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
    if info.is_async:
        try:
            result = await info.user_function(**kwargs)
        except Exception as exc:  # the user's failure becomes TaskFailed, never a host crash
            return _failure(info, exc)
    else:
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(pool, _call_sync, info, kwargs)
        if isinstance(outcome, ActivityFailure):
            return outcome
        result = outcome[0]
    try:
        return str(converter.encode(result, expected_type=None).value)
    except Exception as exc:
        return _failure(info, exc)


def _call_sync(info: FunctionInfo, kwargs: dict[str, Any]) -> tuple[Any] | ActivityFailure:
    # Runs in the pool thread, so the traceback is formatted from the user's frames
    # rather than from the executor's re-raise.
    try:
        return (info.user_function(**kwargs),)
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
