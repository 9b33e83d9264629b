"""The benchmark app: the workloads of issue 5, written as for Azure.

- POST /api/start/{name}: the usual HTTP starter (durable client, 202 check-status);
- hello_sequence5: HelloSequence5, five activities in sequence;
- sequence: input N, N activities one after the other;
- fan_out: input N, N activities at once, then their sum;
- noop: returns its input without any activity (the starter-latency workload).
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

Orchestration = Generator[Any, Any, Any]

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["name"], None, req.get_json() if body else None
    )
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def hello_sequence5(context: df.DurableOrchestrationContext) -> Orchestration:
    results = []
    for city in ("Tokyo", "Seattle", "London", "Paris", "Lima"):
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext) -> Orchestration:
    total = 0
    for step in range(context.get_input()):
        total += yield context.call_activity("step", step)
    return total


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Orchestration:
    count = context.get_input()
    results = yield context.task_all([context.call_activity("step", i) for i in range(count)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def noop(context: df.DurableOrchestrationContext) -> Orchestration:
    return context.get_input()
    yield  # a generator, as the SDK requires


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity_trigger(input_name="n")
def step(n: int) -> int:
    return n


@app.orchestration_trigger(context_name="context")
def burn(context: df.DurableOrchestrationContext) -> Orchestration:
    """One CPU-bound activity (the HTTP front's latency is measured meanwhile)."""
    return (yield context.call_activity("spin", context.get_input()))


@app.activity_trigger(input_name="seconds")
def spin(seconds: float) -> int:
    """Pure-Python CPU work for `seconds`: holds the GIL like a real computation."""
    import time

    deadline = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < deadline:
        total += sum(i * i for i in range(1000))
    return total
