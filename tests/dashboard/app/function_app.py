"""The app the dashboard tests run on durablehost: a few orchestrations of every shape the
dashboard shows.

- hello_sequence: three activities in a row.
- approval: reports progress as {"fraction": ...} in its custom status, then waits for
  the external event "Approval".
- parent: a timer, then hello_sequence as a sub-orchestration.
- flaky: its activity fails on the first attempt per instance, so a rewind completes it.
- failing: raises after one activity, so the instance ends Failed.
"""

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_failed_once: set[str] = set()


@app.route(route="start/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["functionName"], client_input=None)
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield context.call_activity("hello", city)))
    return results


@app.activity_trigger(input_name="city")
def hello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    context.set_custom_status({"fraction": 0.6, "stage": "waiting for approval"})
    answer = yield context.wait_for_external_event("Approval")
    context.set_custom_status({"fraction": 1.0, "stage": "approved"})
    return {"approval": answer}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
    child = yield context.call_sub_orchestrator(
        "hello_sequence", instance_id=f"{context.instance_id}-child"
    )
    return {"child": child}


@app.orchestration_trigger(context_name="context")
def flaky(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.call_activity("flaky_step", context.instance_id))


@app.activity_trigger(input_name="key")
def flaky_step(key: str) -> str:
    if key not in _failed_once:
        _failed_once.add(key)
        raise RuntimeError(f"first attempt for {key} fails")
    return f"recovered {key}"


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.call_activity("hello", "before the failure")
    raise ValueError("the orchestrator gave up")
