"""An app for the worker-process tests: activities that say where they ran, fail, log,
move large values, and one that waits to be killed."""

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
log = logging.getLogger("workers_app")


@app.orchestration_trigger(context_name="context")
def where(context: df.DurableOrchestrationContext):
    """Process ids of a sync and an async activity, and of the orchestrator itself."""
    sync_pid = yield context.call_activity("sync_pid", None)
    async_pid = yield context.call_activity("async_pid", None)
    return {"sync": sync_pid, "async": async_pid, "orchestrator": os.getpid()}


@app.activity_trigger(input_name="unused")
def sync_pid(unused: None) -> int:
    return os.getpid()


@app.activity_trigger(input_name="unused")
async def async_pid(unused: None) -> int:
    await asyncio.sleep(0)
    return os.getpid()


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("broken", context.get_input())
    except Exception as exc:  # the orchestrator sees the activity's failure
        return f"caught: {exc}"
    return "not failed"


@app.activity_trigger(input_name="n")
def broken(n: int) -> int:
    raise ValueError(f"no good: {n}")


@app.orchestration_trigger(context_name="context")
def chatty(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("talk", context.get_input()))


@app.activity_trigger(input_name="word")
def talk(word: str) -> str:
    log.warning("logged by the activity: %s", word)
    print(f"printed by the activity: {word}")
    return word


@app.orchestration_trigger(context_name="context")
def big(context: df.DurableOrchestrationContext):
    """A few MB into an activity and a few MB back."""
    made = yield context.call_activity("make_big", context.get_input())
    return (yield context.call_activity("measure_big", made))


@app.activity_trigger(input_name="size")
def make_big(size: int) -> str:
    return "".join(chr(ord("a") + i % 26) for i in range(size))


@app.activity_trigger(input_name="text")
def measure_big(text: str) -> dict:
    return {"length": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}


@app.orchestration_trigger(context_name="context")
def killable(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("wait_to_be_killed", context.get_input()))


@app.activity_trigger(input_name="marker")
def wait_to_be_killed(marker: str) -> str:
    """The first run records its pid and waits (for a SIGKILL of its worker); a run
    after that finds the record and returns at once."""
    record = Path(marker)
    earlier = record.read_text().split() if record.exists() else []
    with record.open("a") as out:
        out.write(f"{os.getpid()}\n")
    if earlier:
        return f"ran again in {os.getpid()} after {len(earlier)} run(s)"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "never killed"
