"""A small Durable Functions app written as for Azure: starter, chaining, timer starter."""

import os

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["functionName"], None, req.get_json() if body else None
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="wait/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="starter")
async def http_start_and_wait(
    req: func.HttpRequest, starter: df.DurableOrchestrationClient, context: func.Context
):
    instance_id = await starter.start_new(req.route_params["functionName"], None, None)
    return await starter.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=20000
    )


@app.route(route="status/{instanceId}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def http_status(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    status = await client.get_status(req.route_params["instanceId"])
    return {
        "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
        "output": status.output,
    }


@app.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext):
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.timer_trigger(
    schedule="%TICK_SCHEDULE%", arg_name="timer", run_on_startup=True, use_monitor=False
)
@app.durable_client_input(client_name="client")
async def tick_starter(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    if os.environ.get("TICK_INSTANCE_ID"):
        await client.start_new("hello_sequence", os.environ["TICK_INSTANCE_ID"], None)
