"""Faults over a real socket: 429/503 with Retry-After, a lost POST answer, a token rotated
while five waits run, and start() against an ARM-style start endpoint."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from opsclient import AsyncOperationsClient, OperationsClient
from tests.opsclient.arm_api import FAST, RunningArmAPI

WAITERS = 5


def run_report(flavor: str, api: RunningArmAPI, rows: int) -> object:
    if flavor == "sync":
        with OperationsClient(api.url, polling=FAST) as ops:
            return ops.run("report", {"rows": rows})

    async def go() -> object:
        async with AsyncOperationsClient(api.url, polling=FAST) as ops:
            return await ops.run("report", {"rows": rows})

    return asyncio.run(go())


def test_start_polls_the_operation_location_and_applies_the_rules(
    flavor: str, api: RunningArmAPI
) -> None:
    assert run_report(flavor, api, 3) == {"rows": 3}
    assert api.state.requests_to("GET", "/reports/")  # resourceLocation, not Location
    assert not api.state.requests_to("GET", "/elsewhere")


def test_429_and_503s_are_retried(flavor: str, api: RunningArmAPI) -> None:
    api.state.faults += [
        ("GET", "/operations/", 429),
        ("GET", "/operations/", 503),
        ("GET", "/operations/", 503),
        ("GET", "/reports/", 503),
    ]
    assert run_report(flavor, api, 4) == {"rows": 4}
    assert not api.state.faults  # every fault was met, and got past
    assert len(api.state.requests_to("GET", "/operations/")) == 5  # 3 faults + 2 polls


def test_a_lost_post_answer_is_retried_with_the_same_idempotency_key(
    flavor: str, api: RunningArmAPI
) -> None:
    api.state.faults.append(("POST", "/api/operations/", "drop"))
    assert run_report(flavor, api, 5) == {"rows": 5}
    posts = api.state.requests_to("POST", "/api/operations/")
    assert len(posts) == 2
    assert posts[0]["idempotency-key"] == posts[1]["idempotency-key"]
    assert len(api.state.operations) == 1  # the retry found the operation already started


class RotatingTokens:
    """t1, t2, t3...: counts how often the client asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            return f"t{self.calls}"


def test_a_rotated_token_is_refreshed_once_for_five_concurrent_sync_waits(
    api: RunningArmAPI,
) -> None:
    tokens = RotatingTokens()
    api.state.required_token = "t1"
    with OperationsClient(api.url, token_provider=tokens, polling=FAST) as ops:
        operations = [ops.start("report", {"rows": n}) for n in range(WAITERS)]
        api.state.required_token = "t2"  # rotated on the server while the waits run
        with ThreadPoolExecutor(WAITERS) as pool:
            finals = list(pool.map(ops.wait, operations))
        results = [ops.result(final) for final in finals]
    assert results == [{"rows": n} for n in range(WAITERS)]
    assert tokens.calls == 2


async def test_a_rotated_token_is_refreshed_once_for_five_concurrent_async_waits(
    api: RunningArmAPI,
) -> None:
    tokens = RotatingTokens()
    api.state.required_token = "t1"
    async with AsyncOperationsClient(api.url, token_provider=tokens, polling=FAST) as ops:
        operations = [await ops.start("report", {"rows": n}) for n in range(WAITERS)]
        api.state.required_token = "t2"
        finals = await asyncio.gather(*(ops.wait(op) for op in operations))
        results = [await ops.result(final) for final in finals]
    assert results == [{"rows": n} for n in range(WAITERS)]
    assert tokens.calls == 2
    refused = [
        h for h in api.state.requests_to("GET", "/operations/") if h["authorization"] == "Bearer t1"
    ]
    assert refused  # the waits did meet the 401s
