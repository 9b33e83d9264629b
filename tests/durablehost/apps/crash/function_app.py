"""An app for the crash test: activities and durable timers kept in flight.

Every activity invocation appends its key to the file named by CRASH_LOG before it
does its work, so the test can count how often each one ran across a SIGKILL.
"""

import datetime
import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def crash_flow(context: df.DurableOrchestrationContext):
    tag = context.get_input()["tag"]
    first = yield context.call_activity("step", f"{tag}/a")
    yield context.create_timer(context.current_utc_datetime + datetime.timedelta(milliseconds=300))
    parts = yield context.task_all([context.call_activity("step", f"{tag}/p{k}") for k in range(3)])
    last = yield context.call_activity("step", f"{tag}/b")
    return [first, *parts, last]


@app.activity_trigger(input_name="key")
def step(key: str) -> str:
    with open(os.environ["CRASH_LOG"], "a", encoding="utf-8") as log:
        log.write(key + "\n")
        log.flush()
        os.fsync(log.fileno())
    time.sleep(0.01)  # keeps a few activities in flight when the host is killed
    return f"done:{key}"
