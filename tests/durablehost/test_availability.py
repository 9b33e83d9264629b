"""durablehost.front.availability: which failures are refusals of the task hub, the
refusal errors surviving the hub writer's pipe, and a real aiohttp server that stops:
new requests and the ones still running after the grace are answered 503 problem+json
with Retry-After."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from durablehost.errors import HubUnavailableError
from durablehost.front.availability import HostAvailability, HubRefusal, hub_refusal_of
from durablehost.store.sqlite import HubFullError
from durablehost.store.writer import HubWriterError


def test_a_hub_error_anywhere_in_the_chain_is_a_refusal() -> None:
    try:
        try:
            raise HubFullError("the task hub is out of disk space")
        except HubFullError as full:
            raise RuntimeError("my starter failed") from full
    except RuntimeError as error:
        assert hub_refusal_of(error, []) == HubRefusal(30, "the task hub is out of disk space")


def test_the_sdks_exception_with_a_503_problem_is_a_refusal() -> None:
    # What DurableOrchestrationClient.start_new raises for any status but 2xx and 400.
    sdk_error = Exception({"status": 503, "detail": "the hub writer process is gone"})
    assert hub_refusal_of(sdk_error, []) == HubRefusal(5, "the hub writer process is gone")
    assert hub_refusal_of(sdk_error, [30]) == HubRefusal(30, "the hub writer process is gone")


def test_a_noted_refusal_counts_even_when_the_function_raised_something_else() -> None:
    assert hub_refusal_of(ValueError("wrapped beyond recognition"), [5, 30]) == HubRefusal(30, None)


@pytest.mark.parametrize(
    "error",
    [ValueError("bad input"), Exception({"status": 500, "detail": "bug"}), Exception("a", "b")],
)
def test_other_failures_are_not_refusals(error: Exception) -> None:
    assert hub_refusal_of(error, []) is None


@pytest.mark.parametrize("kind", [HubFullError, HubWriterError])
def test_refusals_survive_the_writer_pipe(kind: type[HubUnavailableError]) -> None:
    copy = pickle.loads(pickle.dumps(kind("why")))
    assert type(copy) is kind
    assert str(copy) == "why"
    assert copy.retry_after == kind.retry_after


@dataclass
class Server:
    url: str
    availability: HostAvailability
    started: asyncio.Event  # set when /slow is running
    release: asyncio.Event  # lets /slow answer


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A real aiohttp server on a free loopback port: /slow waits for `release`."""
    availability = HostAvailability()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(text="done")

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="fast")

    app = web.Application(middlewares=[availability.middleware()])
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", fast)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Server(f"http://127.0.0.1:{site.port}", availability, started, release)
    finally:
        release.set()
        await runner.cleanup()


async def test_stopping_finishes_quick_requests_and_answers_the_rest_503(
    server: Server,
) -> None:
    url, availability = server.url, server.availability
    async with aiohttp.ClientSession() as session:
        assert await (await session.get(f"{url}/fast")).text() == "fast"
        stuck = asyncio.create_task(session.get(f"{url}/slow"))
        await asyncio.wait_for(server.started.wait(), 10)
        assert availability.in_flight == 1

        availability.refuse("the host is stopping")
        refused = await session.get(f"{url}/fast")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "5"
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert (await refused.json())["detail"] == "the host is stopping"

        assert await availability.drain(0.2) == 1
        answer = await stuck
        assert answer.status == 503
        assert (await answer.json())["message"] == "the host is stopping"
        assert availability.in_flight == 0


async def test_requests_that_finish_within_the_grace_are_answered_normally(
    server: Server,
) -> None:
    availability = server.availability
    async with aiohttp.ClientSession() as session:
        running = asyncio.create_task(session.get(f"{server.url}/slow"))
        await asyncio.wait_for(server.started.wait(), 10)
        availability.refuse("the host is stopping")
        draining = asyncio.create_task(availability.drain(30))
        server.release.set()
        assert await draining == 0
        answer = await running
        assert answer.status == 200
        assert await answer.text() == "done"
