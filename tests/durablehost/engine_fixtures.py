"""Helpers for the engine tests: the sample app, a running engine on a real SQLite file,
a clock the test moves forward, polling with deadlines, and the golden history shape.

Plain helpers rather than conftest fixtures, so each test module says what it uses.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from durablehost.app.loader import FunctionIndex, load_app
from durablehost.engine.engine import DurableEngine
from durablehost.engine.episodes import SCHEDULING_EVENTS
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import TERMINAL_STATUSES, InstanceStatus
from durablehost.store import open_store

__all__ = [
    "GOLDEN_DIR",
    "SAMPLES_DIR",
    "SteppingClock",
    "at",
    "drive_until_done",
    "episode_input",
    "episode_spans",
    "event_shape",
    "events_from_golden",
    "finish",
    "history_shape",
    "probe",
    "running_engine",
    "samples_index",
    "settle",
    "stop_engine",
    "wait_until",
]

SAMPLES_DIR = Path(__file__).parent / "apps" / "engine_samples"
GOLDEN_DIR = Path(__file__).parent / "golden"


@functools.cache
def samples_index() -> FunctionIndex:
    """The sample app, imported once per session.

    Other test modules import their own `function_app`, which replaces the module in
    sys.modules; the cached index keeps pointing at this app's functions and globals.
    """
    return load_app(SAMPLES_DIR)


def probe(index: FunctionIndex | None = None) -> Any:
    """The sample app's PROBE object (through an activity's globals, see samples_index)."""
    index = index or samples_index()
    return index.activities["say_hello"].user_function.__globals__["PROBE"]


@asynccontextmanager
async def running_engine(
    hub: Path, index: FunctionIndex | None = None, **options: Any
) -> AsyncIterator[DurableEngine]:
    """A started DurableEngine on the SQLite task hub file `hub`; stopped and closed after."""
    store = open_store(hub)
    engine = DurableEngine(index or samples_index(), store, **options)
    await engine.start()
    try:
        yield engine
    finally:
        await stop_engine(engine)
        store.close()


async def stop_engine(engine: DurableEngine) -> None:
    """engine.stop(), bounded: on Python 3.11 a stop racing a timer wake-up can lose its
    cancellation and hang (see test_engine_recovery.py::test_stop_is_not_lost_to_a_timer_
    wakeup); the timeout cancels the loops once more and a second stop completes."""
    try:
        async with asyncio.timeout(2):
            await engine.stop()
    except TimeoutError:
        await engine.stop()


async def finish(engine: DurableEngine, instance_id: str, within: float = 15.0) -> InstanceStatus:
    """Wait for the instance to reach a terminal state; fails the test if it does not."""
    status = await engine.wait_for_completion(instance_id, within)
    assert status is not None, f"instance {instance_id} vanished"
    assert status.runtime_status in TERMINAL_STATUSES, (
        f"instance {instance_id} still {status.runtime_status} after {within}s"
    )
    return status


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    within: float = 10.0,
    what: str = "condition",
) -> None:
    """Poll `condition` (sync or async) until true; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


class SteppingClock:
    """A clock that only moves when the test moves it (the engine's `clock=`).

    With it, which events share an episode no longer depends on how fast threads run:
    timers fire only when the test advances time (and tells the engine, through
    `recheck_timers`), after everything else has settled.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance_to(self, moment: datetime) -> None:
        """Move time forward (never back)."""
        self.moment = max(self.moment, moment)

    def advance(self, delta: timedelta) -> None:
        """Move time forward by `delta`."""
        self.moment += delta


def _settled(engine: DurableEngine, clock: SteppingClock) -> datetime | bool | None:
    """False while work can still happen at the current time; otherwise the next timer's
    due time (None when nothing at all is pending)."""
    if engine.store.pending_activities():
        return False
    due = [m.visible_at for m in engine.store.pending_messages()]
    if any(moment is None or moment <= clock() for moment in due):
        return False
    return min((moment for moment in due if moment is not None), default=None)


async def settle(engine: DurableEngine, clock: SteppingClock, within: float = 10.0) -> None:
    """Wait until only future timers (or nothing) are left in the task hub."""
    await wait_until(lambda: _settled(engine, clock) is not False, within, "the task hub to settle")


async def drive_until_done(
    engine: DurableEngine,
    clock: SteppingClock,
    instance_id: str,
    *,
    between_steps: Callable[[int], Awaitable[None]] | None = None,
    within: float = 15.0,
) -> InstanceStatus:
    """Let the instance run, moving the clock to the next timer each time the hub
    settles, until it finishes. `between_steps(step)` runs after each settle (e.g. to
    raise an event at a precise point)."""
    deadline = time.monotonic() + within
    step = 0
    while True:
        await settle(engine, clock, max(deadline - time.monotonic(), 0.1))
        if between_steps is not None:
            await between_steps(step)
            await settle(engine, clock, max(deadline - time.monotonic(), 0.1))
        step += 1
        status = await engine.get_status(instance_id)
        assert status is not None
        if status.runtime_status in TERMINAL_STATUSES:
            return status
        due = _settled(engine, clock)
        if not isinstance(due, datetime):
            raise AssertionError(f"{instance_id} is {status.runtime_status} with nothing due")
        clock.advance_to(due)
        engine.recheck_timers()
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance_id} did not finish in {within}s")


def event_shape(event: HistoryEvent) -> dict[str, Any]:
    """One event as the golden files write it: the type name and the ids and names that
    say which task it is about; timestamps, payload details and generated ids left out."""
    shape: dict[str, Any] = {"type": event.event_type.title}
    if event.event_id != -1:
        shape["id"] = event.event_id
    if event.task_scheduled_id is not None:
        shape["taskScheduledId"] = event.task_scheduled_id
    if event.timer_id is not None:
        shape["timerId"] = event.timer_id
    if event.name is not None:
        shape["name"] = event.name
    return shape


def history_shape(events: Sequence[HistoryEvent]) -> list[dict[str, Any]]:
    """The golden shape of a whole history."""
    return [event_shape(event) for event in events]


def at(seconds: float) -> datetime:
    """A fixed moment `seconds` after the golden histories' epoch."""
    return datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=seconds)


def events_from_golden(entries: list[dict[str, Any]]) -> list[HistoryEvent]:
    """Typed events from a golden file, with made-up but ordered timestamps."""
    events: list[HistoryEvent] = []
    episode = 0
    for entry in entries:
        kind = next(k for k in EventType if k.title == entry["type"])
        if kind is EventType.ORCHESTRATOR_STARTED:
            episode += 1
        moment = at(episode)
        has_fire_at = kind in (EventType.TIMER_CREATED, EventType.TIMER_FIRED)
        events.append(
            HistoryEvent(
                kind,
                moment,
                event_id=entry.get("id", -1),
                name=entry.get("name"),
                version="" if kind is EventType.EXECUTION_STARTED else None,
                input=entry.get("input"),
                result=entry.get("result"),
                reason=entry.get("reason"),
                details="" if "reason" in entry else None,
                task_scheduled_id=entry.get("taskScheduledId"),
                timer_id=entry.get("timerId"),
                fire_at=moment if has_fire_at else None,
                instance_id=entry.get("instanceId"),
                orchestration_status=entry.get("status"),
            )
        )
    return events


def episode_spans(events: Sequence[HistoryEvent]) -> list[tuple[int, int]]:
    """(start, end) index pairs: each episode runs from an OrchestratorStarted to just
    before its OrchestratorCompleted."""
    spans = []
    start = 0
    for index, event in enumerate(events):
        if event.event_type is EventType.ORCHESTRATOR_STARTED:
            start = index
        elif event.event_type is EventType.ORCHESTRATOR_COMPLETED:
            spans.append((start, index))
    return spans


def episode_input(events: Sequence[HistoryEvent], start: int, end: int) -> list[HistoryEvent]:
    """The history the engine hands the executor for the episode at events[start:end]:
    everything stored before it (played), then the events that woke it up (the host
    appends what the episode scheduled after those)."""
    incoming = [e for e in events[start:end] if e.event_type not in SCHEDULING_EVENTS]
    return [*(e.played() for e in events[:start]), *incoming]
