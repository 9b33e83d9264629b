"""HTTP triggers of every shape durablehost must serve (no durable parts)."""

import asyncio
import json
import threading

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello/{name?}", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name") or req.params.get("name") or "world"
    return func.HttpResponse(f"Hello, {name}!")


@app.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    body = {
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "route_params": dict(req.route_params),
        "headers": {k: v for k, v in req.headers.items() if k.startswith("x-")},
        "body": req.get_body().decode(),
        "json": req.get_json() if req.get_body() else None,
        "function_name": context.function_name,
        "invocation_id": context.invocation_id,
        "trace_parent": context.trace_context.trace_parent,
        "thread": threading.current_thread().name,
    }
    return func.HttpResponse(
        json.dumps(body),
        status_code=201,
        mimetype="application/json",
        headers={"X-Echo": "yes"},
    )


@app.route(route="items/{id:int}", methods=["GET"])
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"item {req.route_params['id']}")


@app.route(route="items/{slug:alpha}", methods=["GET"])
def item_by_slug(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"slug {req.route_params['slug']}")


@app.route(route="items/special", methods=["GET"])
def item_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("special")


@app.route(route="files/{*path}")
def files(req: func.HttpRequest) -> str:
    return f"path={req.route_params.get('path', '')}"


@app.route(route="guids/{id:guid}")
def guids(req: func.HttpRequest) -> dict:
    return {"id": req.route_params["id"]}


@app.route(route="as-list")
async def as_list(req: func.HttpRequest) -> list:
    await asyncio.sleep(0)
    return [1, "two", {"three": 3}]


@app.route(route="nothing")
def nothing(req: func.HttpRequest) -> None:
    return None


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret internal detail")


@app.route(route="async-boom")
async def async_boom(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("async secret")


@app.route(route="named-output", binding_arg_name="res")
def named_output(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    res.set(func.HttpResponse("from the output binding", status_code=202))


@app.route(route="thread")
def which_thread(req: func.HttpRequest) -> str:
    return threading.current_thread().name


@app.route(route="slow")
def slow(req: func.HttpRequest) -> str:
    # Holds a pool thread until released, so a test can show the loop stays free.
    SLOW_GATE.wait(timeout=30)
    return "slow done"


SLOW_GATE = threading.Event()


@app.route(route="release-slow", methods=["POST"])
async def release_slow(req: func.HttpRequest) -> str:
    SLOW_GATE.set()
    return "released"


@app.route(route="env/{name}")
def env(req: func.HttpRequest) -> dict:
    import os

    return {"value": os.environ.get(req.route_params["name"])}


@app.route(route="keyed", auth_level=func.AuthLevel.FUNCTION)
def keyed(req: func.HttpRequest) -> str:
    return "function level ok"


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> str:
    return "admin level ok"


@app.route(route="cookies")
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("cookies", headers={"Set-Cookie": "a=1"})
    response.headers.add("Set-Cookie", "b=2")
    return response


@app.route(route="bad-status")
def bad_status(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("x", status_code=999)


@app.route(route="with-blob-input")
@app.blob_input(arg_name="blob", path="container/name.txt", connection="AzureWebJobsStorage")
def with_blob_input(req: func.HttpRequest, blob: func.InputStream) -> str:
    # durablehost does not supply non-durable input bindings: they arrive as None.
    return f"blob is {blob!r}"
