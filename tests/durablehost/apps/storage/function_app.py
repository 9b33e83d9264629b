"""Queue and blob triggers and bindings for the storage trigger tests.

Queue and container names come from app settings (`%ORDERS_QUEUE%`...), so each test runs
on names of its own. Every call of `work_item`, `flaky` and `on_blob` is appended to the
JSON-lines file named by the ATTEMPTS_FILE setting (the test reads it), before the
function fails or succeeds.
"""

import asyncio
import json
import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_running = 0
_peak = 0


def _record(**fields: object) -> None:
    with open(os.environ["ATTEMPTS_FILE"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps({**fields, "at": time.time()}) + "\n")


@app.queue_trigger(arg_name="msg", queue_name="%ORDERS_QUEUE%", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def start_from_queue(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    order = msg.get_json()
    await client.start_new("order_flow", order["id"], order)


@app.orchestration_trigger(context_name="context")
def order_flow(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    order = context.get_input()
    total = yield context.call_activity("price", order)
    return {"id": order["id"], "total": total}


@app.activity_trigger(input_name="order")
def price(order: dict) -> int:
    return int(order["qty"]) * 3


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="WorkStorage")
@app.blob_output(
    arg_name="result", path="%RESULTS_CONTAINER%/{item}.json", connection="AzureWebJobsStorage"
)
@app.queue_output(arg_name="done", queue_name="%DONE_QUEUE%", connection="AzureWebJobsStorage")
async def work_item(msg: func.QueueMessage, result: func.Out[str], done: func.Out[str]) -> None:
    global _running, _peak
    _running += 1
    _peak = max(_peak, _running)
    try:
        # Long enough for the other messages of a batch to start meanwhile.
        await asyncio.sleep(0.2)
        body = msg.get_json()
        _record(item=body["item"], dequeue_count=msg.dequeue_count, peak=_peak)
        result.set(
            json.dumps(
                {
                    "item": body["item"],
                    "id": msg.id,
                    "dequeue_count": msg.dequeue_count,
                    "inserted": msg.insertion_time.isoformat() if msg.insertion_time else None,
                    "has_pop_receipt": bool(msg.pop_receipt),
                }
            )
        )
        done.set(f"done {body['item']}")
    finally:
        _running -= 1


@app.queue_trigger(arg_name="msg", queue_name="%FLAKY_QUEUE%", connection="AzureWebJobsStorage")
def flaky(msg: func.QueueMessage) -> None:
    body = msg.get_json()
    _record(item=body["item"], dequeue_count=msg.dequeue_count)
    if msg.dequeue_count < body["succeed_on"]:
        raise RuntimeError(f"attempt {msg.dequeue_count} of {body['item']} fails on purpose")


@app.blob_trigger(
    arg_name="blob", path="%INBOX_CONTAINER%/{name}.txt", connection="AzureWebJobsStorage"
)
@app.blob_output(
    arg_name="out",
    path="%RESULTS_CONTAINER%/processed/{name}.txt",
    connection="AzureWebJobsStorage",
)
def on_blob(blob: func.InputStream, out: func.Out[str]) -> None:
    text = blob.read().decode("utf-8")
    _record(name=blob.name, length=blob.length, text=text, uri=blob.uri)
    if text.startswith("fail"):
        raise RuntimeError(f"{blob.name} fails on purpose")
    out.set(text.upper())


@app.route(route="enqueue", methods=["POST"])
@app.blob_input(
    arg_name="config", path="%RESULTS_CONTAINER%/config.txt", connection="AzureWebJobsStorage"
)
@app.queue_output(arg_name="msg", queue_name="%DONE_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, config: str, msg: func.Out[str]) -> str:
    msg.set(req.get_body().decode("utf-8"))
    return f"config: {config}"


@app.route(route="to-service-bus", methods=["POST"])
@app.service_bus_queue_output(
    arg_name="bus", connection="ServiceBusConnection", queue_name="outbox"
)
def to_service_bus(req: func.HttpRequest, bus: func.Out[str]) -> str:
    bus.set("hello")
    return "sent"
