"""The HTTP front in-process: a real aiohttp server on a free port, real HTTP requests.

No engine here: these apps have no durable parts (the durable client is covered by the
host tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from durablehost.app.invocation import FunctionInvoker
from durablehost.app.loader import load_app
from durablehost.front.http_front import HttpFront, build_http_routes
from durablehost.front.keys import FunctionKeys

APPS = Path(__file__).parent / "apps"


@dataclass
class Front:
    url: str
    http: httpx.AsyncClient
    front: HttpFront


async def _serve_front(
    route_prefix: str = "api", keys: FunctionKeys | None = None, max_body: int = 1024 * 1024
) -> AsyncIterator[Front]:
    index = load_app(APPS / "http_basic")
    executor = ThreadPoolExecutor(4, thread_name_prefix="function")
    invoker = FunctionInvoker(executor, function_directory=str(APPS / "http_basic"))
    front = HttpFront(
        build_http_routes(index.http), route_prefix=route_prefix, invoker=invoker, keys=keys
    )
    app = web.Application(client_max_size=max_body)

    async def management(request: web.Request) -> web.Response:
        return web.json_response({"management": True})

    app.router.add_get("/runtime/webhooks/durabletask/instances/{id}", management)
    front.install(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Front(url=url, http=http, front=front)
    await runner.cleanup()
    executor.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
async def served() -> AsyncIterator[Front]:
    async for front in _serve_front():
        yield front


async def test_get_with_optional_route_parameter(served: Front) -> None:
    response = await served.http.get("/api/hello")
    assert (response.status_code, response.text) == (200, "Hello, world!")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    response = await served.http.get("/api/hello/Ada")
    assert response.text == "Hello, Ada!"
    response = await served.http.get("/api/hello", params={"name": "Bob"})
    assert response.text == "Hello, Bob!"


async def test_request_carries_method_url_query_headers_body_and_context(served: Front) -> None:
    response = await served.http.post(
        "/api/echo?a=1&a=2&b=x",
        json={"k": "v"},
        headers={"X-Custom": "c", "traceparent": "00-abc-def-01"},
    )
    assert response.status_code == 201
    assert response.headers["x-echo"] == "yes"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["method"] == "POST"
    assert body["url"] == f"{served.url}/api/echo?a=1&a=2&b=x"
    assert body["params"] == {"a": "1,2", "b": "x"}
    assert body["headers"] == {"x-custom": "c"}
    assert body["json"] == {"k": "v"}
    assert body["function_name"] == "echo"
    assert body["invocation_id"]
    assert body["trace_parent"] == "00-abc-def-01"
    assert body["thread"].startswith("function")


async def test_url_honours_forwarded_host_and_proto(served: Front) -> None:
    response = await served.http.put(
        "/api/echo",
        content=b"",
        headers={"X-Forwarded-Host": "public.example.com", "X-Forwarded-Proto": "https"},
    )
    assert response.json()["url"] == "https://public.example.com/api/echo"


async def test_forged_forwarded_host_is_ignored(served: Front) -> None:
    response = await served.http.put(
        "/api/echo", content=b"", headers={"X-Forwarded-Host": "evil.com/<script>"}
    )
    assert response.json()["url"] == f"{served.url}/api/echo"


async def test_precedence_literal_then_constrained(served: Front) -> None:
    assert (await served.http.get("/api/items/special")).text == "special"
    assert (await served.http.get("/api/items/42")).text == "item 42"
    assert (await served.http.get("/api/items/abc")).text == "slug abc"
    response = await served.http.get("/api/items/a1")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_catch_all_and_typed_outputs(served: Front) -> None:
    assert (await served.http.get("/api/files/a/b/c.txt")).text == "path=a/b/c.txt"
    response = await served.http.get("/api/guids/3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    assert response.json() == {"id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}
    assert response.headers["content-type"].startswith("application/json")
    assert (await served.http.get("/api/guids/not-a-guid")).status_code == 404
    response = await served.http.get("/api/as-list")
    assert response.json() == [1, "two", {"three": 3}]
    response = await served.http.get("/api/nothing")
    assert (response.status_code, response.content) == (204, b"")


async def test_named_output_binding(served: Front) -> None:
    response = await served.http.get("/api/named-output")
    assert (response.status_code, response.text) == (202, "from the output binding")


async def test_multiple_set_cookie_headers(served: Front) -> None:
    response = await served.http.get("/api/cookies")
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


async def test_unknown_route_is_404_problem(served: Front) -> None:
    for path in ("/api/nope", "/elsewhere", "/api"):
        response = await served.http.get(path)
        assert response.status_code == 404, path
        problem = response.json()
        assert problem["status"] == 404 and path in problem["detail"]
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_newline_in_the_path_is_still_our_404_problem(served: Front) -> None:
    # `%0A` decodes to a newline, which a `.*` catch-all route does not match.
    for path in ("/api/a%0Ab", "/%0A", "/api/x%0D%0Ay"):
        response = await served.http.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json", path
        assert response.json()["message"] == response.json()["detail"]


async def test_wrong_method_is_405_with_allow(served: Front) -> None:
    response = await served.http.delete("/api/echo")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, PUT"
    assert response.json()["title"] == "Method Not Allowed"


async def test_wrong_method_on_another_route_keeps_its_allow_list(served: Front) -> None:
    assert (await served.http.get("/runtime/webhooks/durabletask/instances/x")).json() == {
        "management": True
    }
    response = await served.http.post("/runtime/webhooks/durabletask/instances/x")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


async def test_exception_is_500_problem_without_details(
    served: Front, caplog: pytest.LogCaptureFixture
) -> None:
    for path in ("/api/boom", "/api/async-boom"):
        response = await served.http.get(path)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert "secret" not in response.text
    logged = "\n".join(record.getMessage() + str(record.exc_info) for record in caplog.records)
    assert "secret internal detail" in logged and "async secret" in logged


async def test_invalid_status_code_is_500(served: Front) -> None:
    assert (await served.http.get("/api/bad-status")).status_code == 500


async def test_sync_function_does_not_block_the_loop(served: Front) -> None:
    slow = asyncio.create_task(served.http.get("/api/slow"))
    # While a pool thread is parked in `slow`, the loop still answers other requests.
    assert (await served.http.get("/api/hello")).status_code == 200
    assert not slow.done()
    assert (await served.http.post("/api/release-slow")).text == "released"
    assert (await slow).text == "slow done"


async def test_empty_route_prefix() -> None:
    async for front in _serve_front(route_prefix=""):
        assert (await front.http.get("/hello/Zed")).text == "Hello, Zed!"
        assert (await front.http.get("/api/hello")).status_code == 404


async def test_function_urls_lists_every_function(served: Front) -> None:
    urls = dict(
        (route.info.function_name, url) for route, url in served.front.function_urls("http://h")
    )
    assert urls["hello"] == "http://h/api/hello/{name?}"
    assert urls["files"] == "http://h/api/files/{*path}"


async def test_keys_enforced_for_function_and_admin_levels() -> None:
    keys = FunctionKeys(
        master_key="master", host_keys={"default": "hostkey"}, function_keys={"keyed": {"k": "fk"}}
    )
    async for front in _serve_front(keys=keys):
        http = front.http
        assert (await http.get("/api/hello")).status_code == 200  # anonymous
        response = await http.get("/api/keyed")
        assert response.status_code == 401
        assert "x-functions-key" in response.json()["detail"]
        assert (await http.get("/api/keyed", params={"code": "wrong"})).status_code == 401
        assert (await http.get("/api/keyed", params={"code": "hostkey"})).status_code == 200
        assert (await http.get("/api/keyed", params={"code": "fk"})).status_code == 200
        assert (
            await http.get("/api/keyed", headers={"x-functions-key": "master"})
        ).status_code == 200
        assert (await http.get("/api/admin-only", params={"code": "hostkey"})).status_code == 401
        assert (await http.get("/api/admin-only", params={"code": "master"})).status_code == 200


async def test_keys_not_enforced_by_default(served: Front) -> None:
    assert (await served.http.get("/api/admin-only")).text == "admin level ok"


async def test_route_and_query_values_are_percent_decoded(served: Front) -> None:
    assert (await served.http.get("/api/hello/J%C3%BCrgen")).text == "Hello, Jürgen!"
    assert (await served.http.get("/api/hello?name=a%20b")).text == "Hello, a b!"
    assert (await served.http.get("/API/Hello/x")).text == "Hello, x!"


async def test_body_over_the_limit_is_413() -> None:
    async for front in _serve_front(max_body=10):
        response = await front.http.post("/api/echo", content=b"x" * 100)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"


async def test_unsupported_input_binding_arrives_as_none(served: Front) -> None:
    assert (await served.http.get("/api/with-blob-input")).text == "blob is None"
