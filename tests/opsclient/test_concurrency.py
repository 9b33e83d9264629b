"""What differs between the twins: stopping a wait, and 401s arriving at the same time."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from opsclient import (
    AsyncOperationsClient,
    OperationsClient,
    OperationStatus,
    OperationTimeout,
    RunState,
    WaitCanceled,
)
from tests.opsclient.scripted import BASE, FakeClock, Script, reply

MONITOR_PATH = "/api/operations/abc"
CALLERS = 4


def running() -> httpx.Response:
    return reply(200, {"id": "abc", "status": "Running", "progress": {"fraction": 0.1}})


# -- sync: a cancel event --------------------------------------------------------------------


@pytest.mark.parametrize("cancel_remote", [False, True])
def test_sync_wait_stops_when_the_cancel_event_is_set(cancel_remote: bool) -> None:
    steps = [("GET", MONITOR_PATH, running())] * 2
    if cancel_remote:
        steps.append(("DELETE", MONITOR_PATH, reply(202)))
    script = Script(*steps)
    cancel = threading.Event()
    clock = FakeClock()
    # Someone else gives up while we sleep after the second poll.
    clock.on_sleep = lambda _s: cancel.set() if len(script.requests) == 2 else None
    with (
        OperationsClient(BASE, transport=httpx.MockTransport(script), clock=clock) as client,
        pytest.raises(WaitCanceled) as caught,
    ):
        client.wait("abc", cancel=cancel, cancel_remote=cancel_remote)
    assert isinstance(caught.value.status, OperationStatus)
    methods = [r.method for r in script.requests]
    assert methods == ["GET", "GET", "DELETE"] if cancel_remote else ["GET", "GET"]


def test_sync_timeout_with_cancel_remote_cancels_on_the_server() -> None:
    script = Script(
        ("GET", MONITOR_PATH, running()),
        ("GET", MONITOR_PATH, running()),
        ("DELETE", MONITOR_PATH, reply(409, {"title": "Conflict", "detail": "just finished"})),
    )
    clock = FakeClock()
    with (
        OperationsClient(BASE, transport=httpx.MockTransport(script), clock=clock) as client,
        pytest.raises(OperationTimeout),
    ):
        # The failed remote cancel (409) is logged, and the timeout still surfaces.
        client.wait("abc", timeout=1, cancel_remote=True)
    assert script.exhausted


# -- async: task cancellation and a cancel event ----------------------------------------------


@pytest.mark.parametrize("cancel_remote", [False, True])
async def test_async_wait_is_cancellable(cancel_remote: bool) -> None:
    steps = [("GET", MONITOR_PATH, running())]
    if cancel_remote:
        steps.append(("DELETE", MONITOR_PATH, reply(202)))
    script = Script(*steps)
    polled = asyncio.Event()

    async with AsyncOperationsClient(
        BASE, transport=httpx.MockTransport(script), clock=SlowClock()
    ) as client:
        task = asyncio.create_task(
            client.wait("abc", cancel_remote=cancel_remote, on_progress=lambda _s: polled.set())
        )
        await asyncio.wait_for(polled.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    methods = [r.method for r in script.requests]
    assert methods == ["GET", "DELETE"] if cancel_remote else ["GET"]


class SlowClock(FakeClock):
    """Sleeps for real on the loop (briefly), so a task can be cancelled mid-wait."""

    async def sleep_async(self, seconds: float, cancel: asyncio.Event | None = None) -> bool:
        await asyncio.sleep(30)
        return False


async def test_async_wait_stops_when_the_cancel_event_is_set() -> None:
    script = Script(*[("GET", MONITOR_PATH, running())] * 3)
    cancel = asyncio.Event()
    async with AsyncOperationsClient(
        BASE, transport=httpx.MockTransport(script), clock=FakeClock()
    ) as client:
        with pytest.raises(WaitCanceled):
            await client.wait("abc", cancel=cancel, on_progress=lambda _s: cancel.set())
    assert len(script.requests) == 1


# -- several concurrent 401s: one refresh -----------------------------------------------------


class CountingTokens:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            return f"tok-{self.calls}"


def test_sync_concurrent_401s_cause_one_refresh() -> None:
    tokens = CountingTokens()
    # Every caller holds its 401 until all have one, so all refresh attempts overlap.
    everyone_rejected = threading.Barrier(CALLERS, timeout=10)

    def server(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer tok-1":
            everyone_rejected.wait()
            return reply(401)
        return reply(200, {"id": "abc", "status": "Running"})

    with (
        OperationsClient(
            BASE, transport=httpx.MockTransport(server), token_provider=tokens
        ) as client,
        ThreadPoolExecutor(CALLERS) as pool,
    ):
        statuses = list(pool.map(lambda _i: client.get("abc"), range(CALLERS)))
    assert [s.state for s in statuses] == [RunState.RUNNING] * CALLERS
    assert tokens.calls == 2  # the first token, and one refresh


async def test_async_concurrent_401s_cause_one_refresh() -> None:
    calls = 0

    async def tokens() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)  # a real await, as a token endpoint would have
        return f"tok-{calls}"

    everyone_rejected = asyncio.Barrier(CALLERS)

    async def server(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer tok-1":
            await asyncio.wait_for(everyone_rejected.wait(), 10)
            return reply(401)
        return reply(200, {"id": "abc", "status": "Running"})

    async with AsyncOperationsClient(
        BASE, transport=httpx.MockTransport(server), token_provider=tokens
    ) as client:
        statuses = await asyncio.gather(*(client.get("abc") for _ in range(CALLERS)))
    assert [s.state for s in statuses] == [RunState.RUNNING] * CALLERS
    assert calls == 2
