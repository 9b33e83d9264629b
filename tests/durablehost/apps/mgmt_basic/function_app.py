"""Sample app for the management API tests, written like the official Durable Functions samples.

- hello_orchestrator: function chaining over the `hello` activity.
- approval_orchestrator: waits for an external event (human interaction), with custom status.
- flaky_orchestrator: its activity fails on the first attempt per input, so the instance
  fails once and completes after a rewind.
- failing_orchestrator: raises, so the instance ends Failed.
"""

import azure.durable_functions as df
import azure.functions as func

myApp = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Inputs the flaky activity has already failed for (one failure per input).
_failed_once: set[str] = set()


@myApp.route(route="orchestrators/{functionName}")
@myApp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    function_name = req.route_params.get("functionName")
    instance_id = await client.start_new(function_name, client_input=req.get_json())
    return client.create_check_status_response(req, instance_id)


@myApp.orchestration_trigger(context_name="context")
def hello_orchestrator(context: df.DurableOrchestrationContext):
    cities = (context.get_input() or {}).get("cities", ["Tokyo", "Seattle", "London"])
    results = []
    for city in cities:
        result = yield context.call_activity("hello", city)
        results.append(result)
    return results


@myApp.activity_trigger(input_name="city")
def hello(city: str) -> str:
    return f"Hello {city}!"


@myApp.orchestration_trigger(context_name="context")
def approval_orchestrator(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting for approval")
    approval = yield context.wait_for_external_event("Approval")
    context.set_custom_status("approved")
    return {"input": context.get_input(), "approval": approval}


@myApp.orchestration_trigger(context_name="context")
def flaky_orchestrator(context: df.DurableOrchestrationContext):
    result = yield context.call_activity("flaky", context.instance_id)
    return result


@myApp.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    if key not in _failed_once:
        _failed_once.add(key)
        raise RuntimeError(f"first attempt for {key} fails")
    return f"recovered {key}"


@myApp.orchestration_trigger(context_name="context")
def failing_orchestrator(context: df.DurableOrchestrationContext):
    yield context.call_activity("hello", "before the failure")
    raise ValueError("the orchestrator gave up")
