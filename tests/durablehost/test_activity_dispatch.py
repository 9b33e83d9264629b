"""The activity dispatcher on its own: sync activities in worker threads, async ones on
the loop, one concurrency limit for both, failures as TaskFailed, and nothing delivered
after a stop (the work item stays stored for the next start)."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from durablehost.app.loader import FunctionIndex, load_app
from durablehost.engine.activities import ActivityDispatcher, ActivityResult
from durablehost.model.history import EventType
from durablehost.store.base import ActivityWork

APP = textwrap.dedent(
    """
    import asyncio
    import threading

    import azure.durable_functions as df

    app = df.DFApp()
    GATE = threading.Event()
    LOCK = threading.Lock()
    STATE = {"running": 0, "most": 0}

    def _enter():
        with LOCK:
            STATE["running"] += 1
            STATE["most"] = max(STATE["most"], STATE["running"])

    def _leave():
        with LOCK:
            STATE["running"] -= 1

    @app.activity_trigger(input_name="n")
    def gated_sync(n: int) -> int:
        _enter()
        try:
            GATE.wait(30)
            return n * 2
        finally:
            _leave()

    @app.activity_trigger(input_name="n")
    async def gated_async(n: int) -> int:
        _enter()
        try:
            while not GATE.is_set():
                await asyncio.sleep(0.005)
            return n * 3
        finally:
            _leave()

    @app.activity_trigger(input_name="n")
    def thread_name(n: int) -> str:
        return threading.current_thread().name

    @app.activity_trigger(input_name="n")
    def broken(n: int) -> int:
        raise ValueError(f"no good: {n}")
    """
)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionIndex]:
    app_dir: Path = tmp_path_factory.mktemp("dispatch_app")
    (app_dir / "function_app.py").write_text(APP)
    yield load_app(app_dir)


@pytest.fixture
def app_globals(index: FunctionIndex) -> Iterator[dict[str, Any]]:
    names = index.activities["gated_sync"].user_function.__globals__
    names["GATE"].clear()
    names["STATE"].update(running=0, most=0)
    yield names
    names["GATE"].set()  # never leave a thread blocked


def _clock() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def _work(name: str, n: int, work_id: int) -> ActivityWork:
    return ActivityWork(f"i{work_id}", "e", work_id, name, str(n), work_id=work_id)


async def _until(predicate: Any, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_sync_and_async_activities_share_one_concurrency_limit(
    index: FunctionIndex, app_globals: dict[str, Any]
) -> None:
    delivered: list[ActivityResult] = []
    dispatcher = ActivityDispatcher(index, concurrency=3, clock=_clock, deliver=delivered.append)
    dispatcher.start()
    try:
        for n in range(8):
            dispatcher.submit(_work("gated_sync" if n % 2 else "gated_async", n, n))
        await _until(lambda: app_globals["STATE"]["running"] == 3)
        await asyncio.sleep(0.05)  # a fourth would have started by now if it could
        assert app_globals["STATE"]["running"] == 3
        app_globals["GATE"].set()
        await _until(lambda: len(delivered) == 8)
    finally:
        dispatcher.stop()
    assert app_globals["STATE"]["most"] == 3
    results = {r.work_id: r.event.result for r in delivered}
    assert results == {n: str(n * 2 if n % 2 else n * 3) for n in range(8)}
    assert all(r.event.event_type is EventType.TASK_COMPLETED for r in delivered)
    assert {r.instance_id for r in delivered} == {f"i{n}" for n in range(8)}


async def test_sync_activities_run_in_worker_threads(index: FunctionIndex) -> None:
    delivered: list[ActivityResult] = []
    dispatcher = ActivityDispatcher(index, concurrency=2, clock=_clock, deliver=delivered.append)
    dispatcher.start()
    try:
        dispatcher.submit(_work("thread_name", 0, 1))
        await _until(lambda: len(delivered) == 1)
    finally:
        dispatcher.stop()
    name = delivered[0].event.result
    assert name is not None and name.startswith('"activity-')
    assert threading.current_thread().name not in name


async def test_a_failing_or_unknown_activity_becomes_task_failed(index: FunctionIndex) -> None:
    delivered: list[ActivityResult] = []
    dispatcher = ActivityDispatcher(index, concurrency=2, clock=_clock, deliver=delivered.append)
    dispatcher.start()
    try:
        dispatcher.submit(_work("broken", 7, 1))
        dispatcher.submit(_work("no_such_activity", 0, 2))
        await _until(lambda: len(delivered) == 2)
    finally:
        dispatcher.stop()
    by_id = {r.work_id: r.event for r in delivered}
    assert by_id[1].event_type is EventType.TASK_FAILED
    assert by_id[1].reason == "Activity function 'broken' failed: ValueError: no good: 7"
    assert 'raise ValueError(f"no good: {n}")' in (by_id[1].details or "")
    assert by_id[2].event_type is EventType.TASK_FAILED
    assert "'no_such_activity' doesn't exist" in (by_id[2].reason or "")


async def test_nothing_is_delivered_after_stop(
    index: FunctionIndex, app_globals: dict[str, Any]
) -> None:
    delivered: list[ActivityResult] = []
    dispatcher = ActivityDispatcher(index, concurrency=1, clock=_clock, deliver=delivered.append)
    dispatcher.start()
    dispatcher.submit(_work("gated_sync", 1, 1))
    dispatcher.submit(_work("gated_sync", 2, 2))  # waits: the limit is 1
    await _until(lambda: app_globals["STATE"]["running"] == 1)
    dispatcher.stop()
    app_globals["GATE"].set()
    await _until(lambda: app_globals["STATE"]["running"] == 0)
    await asyncio.sleep(0.05)
    assert delivered == []
    # A later start runs what is submitted then (the engine resubmits stored work).
    dispatcher.start()
    try:
        dispatcher.submit(_work("gated_sync", 3, 3))
        await _until(lambda: len(delivered) == 1)
    finally:
        dispatcher.stop()
    assert delivered[0].work_id == 3 and delivered[0].event.result == "6"
