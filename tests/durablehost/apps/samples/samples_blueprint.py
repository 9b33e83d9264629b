"""Chaining, fan-out/fan-in to Blob storage, human interaction, monitor, retries,
sub-orchestrations and a failure, in one Blueprint."""

import contextlib
import json
import os
from datetime import timedelta

import azure.durable_functions as df
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context")
def hello_chain(context: df.DurableOrchestrationContext):
    result1 = yield context.call_activity("say_hello", "Tokyo")
    result2 = yield context.call_activity("say_hello", "Seattle")
    result3 = yield context.call_activity("say_hello", "London")
    return [result1, result2, result3]


@bp.orchestration_trigger(context_name="context")
def fan_out_blobs(context: df.DurableOrchestrationContext):
    count = context.get_input()["count"]
    tasks = [
        context.call_activity("write_blob", {"run": context.instance_id, "n": n})
        for n in range(count)
    ]
    sizes = yield context.task_all(tasks)
    return {"blobs": len(sizes), "bytes": sum(sizes)}


@bp.orchestration_trigger(context_name="context")
def approval_workflow(context: df.DurableOrchestrationContext):
    seconds = context.get_input()["timeoutSeconds"]
    deadline = context.current_utc_datetime + timedelta(seconds=seconds)
    timeout_task = context.create_timer(deadline)
    approval_task = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approval_task, timeout_task])
    if winner == approval_task:
        timeout_task.cancel()
        return {"outcome": "approved", "by": approval_task.result["by"]}
    return {"outcome": "escalated"}


@bp.orchestration_trigger(context_name="context")
def monitor(context: df.DurableOrchestrationContext):
    state = context.get_input()
    state["checks"] += 1
    status = yield context.call_activity("check_status", state["checks"])
    context.set_custom_status({"checks": state["checks"], "last": status})
    if status == "done":
        return state
    next_check = context.current_utc_datetime + timedelta(milliseconds=state["intervalMs"])
    yield context.create_timer(next_check)
    context.continue_as_new(state)


@bp.orchestration_trigger(context_name="context")
def with_retries(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=4)
    result = yield context.call_activity_with_retry("flaky", options, context.instance_id)
    return result


@bp.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    cities = yield context.call_sub_orchestrator("hello_chain")
    child_id = f"{context.instance_id}-blobs"
    blobs = yield context.call_sub_orchestrator("fan_out_blobs", {"count": 3}, child_id)
    return {"cities": cities, "blobs": blobs}


@bp.orchestration_trigger(context_name="context")
def doomed(context: df.DurableOrchestrationContext):
    yield context.call_activity("explode", "the reactor")
    return "unreachable"


@bp.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@bp.activity_trigger(input_name="item")
def write_blob(item: dict) -> int:
    connection = os.environ["AzureWebJobsStorage"]  # noqa: SIM112 - the Functions name
    container = BlobServiceClient.from_connection_string(connection).get_container_client("samples")
    with contextlib.suppress(ResourceExistsError):  # another activity created it first
        container.create_container()
    data = json.dumps({"n": item["n"], "square": item["n"] ** 2}).encode()
    container.upload_blob(f"{item['run']}/{item['n']}.json", data, overwrite=True)
    return len(data)


@bp.activity_trigger(input_name="checks")
def check_status(checks: int) -> str:
    return "done" if checks >= 3 else "pending"


_ATTEMPTS: dict[str, int] = {}


@bp.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    _ATTEMPTS[key] = _ATTEMPTS.get(key, 0) + 1
    if _ATTEMPTS[key] < 3:
        raise ConnectionError(f"transient failure {_ATTEMPTS[key]}")
    return f"succeeded on attempt {_ATTEMPTS[key]}"


@bp.activity_trigger(input_name="what")
def explode(what: str) -> None:
    raise RuntimeError(f"cannot process {what}")
