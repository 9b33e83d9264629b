"""operations.instance_pages against a real HTTP server that pages like the extension.

The server answers `GET {rpcBaseUrl}instances/` the way the Durable Functions extension's
HttpApiHandler does: at most `top` instances (its default page when `top` is absent), and
an `x-ms-continuation-token` response header while more remain, read back from the same
request header. The SDK's own `get_status_by` sees only the first page of it; ours sees all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import azure.durable_functions as df
import pytest
from aiohttp import web
from azure.durable_functions.models.utils import http_utils

from operations.errors import TaskHubUnavailableError
from operations.instance_pages import CONTINUATION_HEADER, iter_instances, read_instance_page
from tests.support.ports import free_port

EXTENSION_DEFAULT_PAGE = 100


@dataclass
class PagingHub:
    """A fake task hub list endpoint; records every request's query and token."""

    instances: list[dict[str, Any]]
    requests: list[tuple[dict[str, str], str | None]] = field(default_factory=list)
    fail_with: int | None = None

    async def list_instances(self, request: web.Request) -> web.Response:
        token = request.headers.get(CONTINUATION_HEADER)
        self.requests.append((dict(request.query), token))
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text="hub is down")
        wanted = request.query.get("runtimeStatus")
        rows = [i for i in self.instances if not wanted or i["runtimeStatus"] in wanted.split(",")]
        start = int(token) if token else 0
        top = int(request.query.get("top") or EXTENSION_DEFAULT_PAGE)
        page = rows[start : start + top]
        headers = {}
        if start + top < len(rows):
            headers[CONTINUATION_HEADER] = str(start + top)
        return web.json_response(page, headers=headers)


def _instance(number: int, status: str = "Completed") -> dict[str, Any]:
    return {
        "name": "report_operation",
        "instanceId": f"{number:032x}",
        "runtimeStatus": status,
        "createdTime": "2026-12-01T10:00:00Z",
        "lastUpdatedTime": "2026-12-01T10:00:05Z",
        "input": None,
        "output": None,
        "customStatus": None,
    }


@pytest.fixture(autouse=True)
async def fresh_sdk_session() -> AsyncIterator[None]:
    """The SDK keeps one aiohttp session per process, bound to the loop it was made on;
    each test here runs on its own loop, so each gets (and closes) its own session."""
    http_utils._client_session = None
    yield
    session = http_utils._client_session
    http_utils._client_session = None
    if session is not None:
        await session.close()


@pytest.fixture
async def hub() -> AsyncIterator[tuple[PagingHub, df.DurableOrchestrationClient]]:
    state = PagingHub([_instance(n, "Running" if n % 3 == 0 else "Completed") for n in range(250)])
    app = web.Application()
    app.router.add_get("/runtime/webhooks/durabletask/instances/", state.list_instances)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    base = f"http://127.0.0.1:{port}/runtime/webhooks/durabletask/"
    binding = {
        "taskHubName": "hub",
        "creationUrls": {},
        "managementUrls": {},
        "baseUrl": base,
        "requiredQueryStringParameters": "",
        "rpcBaseUrl": base,
    }
    try:
        yield state, df.DurableOrchestrationClient(json.dumps(binding))
    finally:
        await runner.cleanup()


async def test_the_sdk_sees_only_the_first_page_but_iter_instances_sees_every_one(
    hub: tuple[PagingHub, df.DurableOrchestrationClient],
) -> None:
    state, client = hub
    # Why this module exists: SDK 1.x drops the continuation header.
    assert len(await client.get_status_all()) == EXTENSION_DEFAULT_PAGE

    seen = [status.instance_id async for status in iter_instances(client, page_size=40)]
    assert seen == [i["instanceId"] for i in state.instances]
    tokens = [token for _, token in state.requests[1:]]
    assert tokens == [None, *[str(n) for n in range(40, 250, 40)]]


async def test_filters_go_to_the_hub_and_pages_follow_its_token(
    hub: tuple[PagingHub, df.DurableOrchestrationClient],
) -> None:
    state, client = hub
    first = await read_instance_page(client, top=30, runtime_status=["Running", "Pending"])
    query, token = state.requests[-1]
    assert token is None
    assert query["runtimeStatus"] == "Running,Pending"
    assert query["top"] == "30"
    assert query["showInput"] == "false"
    assert all(status.runtime_status.value == "Running" for status in first.instances)
    assert first.continuation is not None
    second = await read_instance_page(
        client, top=30, continuation=first.continuation, runtime_status=["Running"]
    )
    assert state.requests[-1][1] == first.continuation
    ids = {s.instance_id for s in first.instances} | {s.instance_id for s in second.instances}
    assert len(ids) == 60


async def test_a_failing_hub_is_a_task_hub_error_not_a_crash(
    hub: tuple[PagingHub, df.DurableOrchestrationClient],
) -> None:
    state, client = hub
    state.fail_with = 500
    with pytest.raises(TaskHubUnavailableError, match="500"):
        await read_instance_page(client, top=10)


async def test_an_unreachable_hub_is_a_task_hub_error() -> None:
    base = f"http://127.0.0.1:{free_port()}/runtime/webhooks/durabletask/"
    binding = {"taskHubName": "h", "creationUrls": {}, "managementUrls": {}, "rpcBaseUrl": base}
    client = df.DurableOrchestrationClient(json.dumps(binding))
    with pytest.raises(TaskHubUnavailableError, match="failed"):
        await read_instance_page(client, top=10)
