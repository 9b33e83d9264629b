"""The LROPoller-style pollers, over real sockets: methods, callbacks, continuation tokens."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from opsclient import (
    AsyncOperationPoller,
    AsyncOperationsClient,
    ConfigurationError,
    OperationFailed,
    OperationPoller,
    OperationsClient,
    OperationTimeout,
    WaitCanceled,
)
from tests.opsclient.arm_api import FAST, RunningArmAPI, serve_arm_api
from tests.opsclient.fake_api import RunningFakeAPI, serve_fake_api


@pytest.fixture
def arm() -> Iterator[RunningArmAPI]:
    with serve_arm_api() as running:
        yield running


@pytest.fixture
def ours() -> Iterator[RunningFakeAPI]:
    with serve_fake_api() as running:
        yield running


def test_begin_follow_polls_in_the_background(arm: RunningArmAPI) -> None:
    called = threading.Event()
    seen: list[OperationPoller] = []
    with httpx.Client(base_url=arm.url) as http, OperationsClient(polling=FAST) as ops:
        poller = ops.begin_follow(http.post("/reports", json={"rows": 3}))
        poller.add_done_callback(lambda p: (seen.append(p), called.set()))
        assert poller.result() == {"rows": 3}
        assert poller.done()
        assert poller.status() == "Succeeded"
        poller.wait()  # done: returns at once
        assert called.wait(5)
        assert seen == [poller]
        late: list[OperationPoller] = []
        poller.add_done_callback(late.append)  # already done: called at once
        assert late == [poller]


def test_a_token_resumes_in_a_new_client(arm: RunningArmAPI) -> None:
    with httpx.Client(base_url=arm.url) as http, OperationsClient(polling=FAST) as first:
        started = http.put("/things/resumed", json={"size": 5})
        poller = first.begin_follow(started)
        token = poller.continuation_token()
        poller.wait()
    state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert state["final"]["method"] == "PUT"  # the rule travels with the token
    with OperationsClient(polling=FAST) as second:
        resumed = second.poller_from_continuation_token(token)
        assert resumed.result() == {"name": "resumed", "size": 5}
    with OperationsClient(polling=FAST) as third:
        again = OperationPoller.from_continuation_token(token, client=third)
        assert again.result() == {"name": "resumed", "size": 5}


def test_the_token_never_holds_the_clients_credentials(ours: RunningFakeAPI) -> None:
    with OperationsClient(
        ours.url, function_key="fn-key-123", token_provider=lambda: "tok-456", polling=FAST
    ) as ops:
        poller = ops.begin("report", {"rows": 2})
        token = poller.continuation_token()
        assert poller.result() == {"rows": 2, "kind": "report"}
    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert "fn-key-123" not in decoded and "tok-456" not in decoded


def test_result_with_a_timeout_while_still_running(ours: RunningFakeAPI) -> None:
    with OperationsClient(ours.url, polling=FAST) as ops:
        poller = ops.begin("slow", {})
        with pytest.raises(OperationTimeout, match="keeps polling"):
            poller.result(timeout=0.05)
        assert not poller.done()
        assert poller.status() in ("Pending", "Running")
        poller.stop_polling()
        with pytest.raises(WaitCanceled):
            poller.result()
        assert poller.done()


def test_a_failure_is_raised_by_result_and_wait(arm: RunningArmAPI) -> None:
    with httpx.Client(base_url=arm.url) as http, OperationsClient(polling=FAST) as ops:
        poller = ops.begin_follow(http.post("/things/p/explode"))
        with pytest.raises(OperationFailed, match="p exploded"):
            poller.result()
        with pytest.raises(OperationFailed):
            poller.wait()
        assert poller.status() == "Failed"


def test_an_answer_with_nothing_to_poll_is_a_finished_poller(arm: RunningArmAPI) -> None:
    with httpx.Client(base_url=arm.url) as http, OperationsClient(polling=FAST) as ops:
        poller = ops.begin_follow(http.get("/plain"))
        assert poller.done() and poller.result() == {"plain": True}
        with pytest.raises(ConfigurationError, match="nothing to resume"):
            poller.continuation_token()


def test_a_token_that_is_not_ours_is_refused() -> None:
    with OperationsClient() as ops:
        for bad in ("not base64 !!", base64.urlsafe_b64encode(b'{"v": 9}').decode(), ""):
            with pytest.raises(ConfigurationError, match="continuation token"):
                ops.poller_from_continuation_token(bad)


async def test_async_poller(arm: RunningArmAPI) -> None:
    async with (
        httpx.AsyncClient(base_url=arm.url) as http,
        AsyncOperationsClient(polling=FAST) as ops,
    ):
        poller = await ops.begin_follow(await http.patch("/things/q", json={"size": 6}))
        seen: list[AsyncOperationPoller] = []
        poller.add_done_callback(seen.append)
        token = poller.continuation_token()
        assert await poller == {"name": "q", "size": 6}
        assert poller.done() and poller.status() == "Succeeded" and seen == [poller]
        await poller.wait()
    async with AsyncOperationsClient(polling=FAST) as fresh:
        resumed = fresh.poller_from_continuation_token(token)
        assert await resumed.result() == {"name": "q", "size": 6}


async def test_async_begin_and_stop(ours: RunningFakeAPI) -> None:
    async with AsyncOperationsClient(ours.url, polling=FAST) as ops:
        done = await ops.begin("report", {"rows": 4})
        assert await done.result() == {"rows": 4, "kind": "report"}
        slow = await ops.begin("slow", {})
        with pytest.raises(OperationTimeout):
            await slow.result(timeout=0.05)
        assert not slow.done()
        slow.stop_polling()
        with pytest.raises(WaitCanceled):
            await slow.result()
        assert slow.done()


async def test_async_failure(arm: RunningArmAPI) -> None:
    async with (
        httpx.AsyncClient(base_url=arm.url) as http,
        AsyncOperationsClient(polling=FAST) as ops,
    ):
        poller = await ops.begin_follow(await http.post("/things/r/explode"))
        with pytest.raises(OperationFailed, match="r exploded"):
            await poller.result()
        assert poller.status() == "Failed"
