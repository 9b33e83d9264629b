"""An app that uses what durablehost does not run (entities, call_http), and lists instances
with the SDK's get_status_all / get_status_by, which read only the hub's first page."""

import azure.durable_functions as df
import azure.functions as func

myApp = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

COUNTER = df.EntityId("counter", "k")


@myApp.route(route="list")
@myApp.durable_client_input(client_name="client")
async def list_all(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    if req.params.get("by"):
        statuses = await client.get_status_by(
            runtime_status=[df.OrchestrationRuntimeStatus.Running]
        )
    else:
        statuses = await client.get_status_all()
    return func.HttpResponse(str(len(statuses)))


@myApp.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    yield context.wait_for_external_event("go")
    return "went"


@myApp.orchestration_trigger(context_name="context")
def only_signals(context: df.DurableOrchestrationContext):
    context.signal_entity(COUNTER, "add", 1)
    return "signalled"


@myApp.orchestration_trigger(context_name="context")
def signals_after_an_activity(context: df.DurableOrchestrationContext):
    yield context.call_activity("echo", "first")
    context.signal_entity(COUNTER, "add", 1)
    return "signalled"


@myApp.orchestration_trigger(context_name="context")
def calls_entity(context: df.DurableOrchestrationContext):
    value = yield context.call_entity(COUNTER, "get")
    return value


@myApp.orchestration_trigger(context_name="context")
def calls_entity_among_activities(context: df.DurableOrchestrationContext):
    results = yield context.task_all(
        [context.call_activity("echo", "a"), context.call_entity(COUNTER, "get")]
    )
    return results


@myApp.orchestration_trigger(context_name="context")
def calls_http(context: df.DurableOrchestrationContext):
    response = yield context.call_http("GET", "https://example.invalid/status")
    return response.status_code


@myApp.activity_trigger(input_name="value")
def echo(value: str) -> str:
    return value


@myApp.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext):
    context.set_result(context.get_state(lambda: 0))
