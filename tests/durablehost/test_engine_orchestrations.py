"""What orchestrations can do, run in-process on DurableEngine over a real SQLite hub:
chaining, fan-out/fan-in, retries, sub-orchestrations, timers, external events,
task_any with timer cancellation, continue_as_new, custom status and determinism.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durablehost.engine.engine import DurableEngine
from durablehost.engine.executor import retry_delay
from durablehost.errors import InstanceFinishedError, InstanceNotFoundError
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import RuntimeStatus
from tests.durablehost.engine_fixtures import (
    SteppingClock,
    drive_until_done,
    finish,
    probe,
    running_engine,
    settle,
    wait_until,
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[DurableEngine]:
    async with running_engine(tmp_path / "hub.sqlite3") as running:
        yield running


def unique(prefix: str) -> str:
    """A key no other test (or earlier run in this process) has used."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def history(engine: DurableEngine, instance_id: str) -> list[HistoryEvent]:
    status = await engine.get_status(instance_id, show_history=True)
    assert status is not None and status.history is not None
    return list(status.history)


def of_type(events: list[HistoryEvent], kind: EventType) -> list[HistoryEvent]:
    return [event for event in events if event.event_type is kind]


def output(status: Any) -> Any:
    return json.loads(status.output) if status.output is not None else None


async def start(engine: DurableEngine, name: str, value: Any = None, **kw: Any) -> str:
    return await engine.start_orchestration(name, json.dumps(value), **kw)


async def waits_for_event(engine: DurableEngine, instance_id: str, episodes: int = 1) -> bool:
    """True once the instance has finished `episodes` episodes (and so is waiting)."""
    events = await history(engine, instance_id)
    return len(of_type(events, EventType.ORCHESTRATOR_COMPLETED)) >= episodes


# -- chaining and fan-out ----------------------------------------------------------------


async def test_chaining_runs_activities_in_order(engine: DurableEngine) -> None:
    instance_id = await start(engine, "chain", ["Tokyo", "Seattle", "London"])
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert output(status) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    events = await history(engine, instance_id)
    scheduled = of_type(events, EventType.TASK_SCHEDULED)
    assert [(e.event_id, e.input) for e in scheduled] == [
        (0, '"Tokyo"'),
        (1, '"Seattle"'),
        (2, '"London"'),
    ]
    completed = of_type(events, EventType.TASK_COMPLETED)
    assert [e.task_scheduled_id for e in completed] == [0, 1, 2]
    assert events[-1].event_type is EventType.EXECUTION_COMPLETED


async def test_fan_out_fan_in_of_200_activities(engine: DurableEngine) -> None:
    instance_id = await start(engine, "fan_out", 200)
    status = await finish(engine, instance_id, within=30)
    assert output(status) == sum(n * n for n in range(200))
    events = await history(engine, instance_id)
    scheduled = of_type(events, EventType.TASK_SCHEDULED)
    assert [e.event_id for e in scheduled] == list(range(200))
    completed = sorted(e.task_scheduled_id or 0 for e in of_type(events, EventType.TASK_COMPLETED))
    assert completed == list(range(200))
    assert engine.store.pending_activities() == []


async def test_function_names_are_case_insensitive(engine: DurableEngine) -> None:
    """As in the Functions runtime: 'Chain' starts 'chain', 'Say_Hello' calls 'say_hello'."""
    status = await finish(engine, await start(engine, "Chain", ["case"]))
    assert (status.name, output(status)) == ("chain", ["Hello case!"])
    spec = {"activity": "SAY_HELLO", "input": "upper"}
    assert output(await finish(engine, await start(engine, "call_named", spec))) == "Hello upper!"


async def test_a_long_chain_keeps_its_order(engine: DurableEngine) -> None:
    """100 sequential activities: live sessions (no replay) stay in step with the
    history the engine writes."""
    cities = [f"c{n}" for n in range(100)]
    status = await finish(engine, await start(engine, "chain", cities), within=30)
    assert output(status) == [f"Hello {city}!" for city in cities]


async def test_payloads_round_trip_unchanged(engine: DurableEngine) -> None:
    cities = ["Zürich ☃", 'quote " and \\ backslash', "x" * 20_000]
    status = await finish(engine, await start(engine, "chain", cities))
    assert output(status) == [f"Hello {city}!" for city in cities]
    assert json.loads(status.input or "null") == cities


async def test_many_instances_progress_at_once(engine: DurableEngine) -> None:
    ids = [await start(engine, "chain", [f"city{n}"]) for n in range(30)]
    for n, instance_id in enumerate(ids):
        status = await finish(engine, instance_id)
        assert output(status) == [f"Hello city{n}!"]


# -- retries -----------------------------------------------------------------------------


async def test_retry_succeeds_after_failed_attempts(engine: DurableEngine) -> None:
    key = unique("retry-ok")
    spec = {"key": key, "fail": 2, "interval": 20, "attempts": 3}
    instance_id = await start(engine, "retry_one", spec)
    status = await finish(engine, instance_id)
    assert output(status) == f"{key} ok after 3"
    events = await history(engine, instance_id)
    # attempt 0 fails -> retry timer 1 -> attempt 2 fails -> timer 3 -> attempt 4 succeeds
    assert [e.event_id for e in of_type(events, EventType.TASK_SCHEDULED)] == [0, 2, 4]
    assert [e.event_id for e in of_type(events, EventType.TIMER_CREATED)] == [1, 3]
    assert [e.task_scheduled_id for e in of_type(events, EventType.TASK_FAILED)] == [0, 2]
    # Each retry timer is due first_retry_interval after the episode that created it.
    for timer in of_type(events, EventType.TIMER_CREATED):
        assert timer.fire_at is not None
        assert timer.fire_at - timer.timestamp == timedelta(milliseconds=20)
    assert probe().calls[key] == 3


async def test_retry_gives_up_after_max_attempts(engine: DurableEngine) -> None:
    key = unique("retry-exhausted")
    spec = {"key": key, "fail": 99, "interval": 10, "attempts": 3}
    instance_id = await start(engine, "retry_one", spec)
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert f"transient failure 3 of {key}" in output(status)
    events = await history(engine, instance_id)
    # Three attempts; one more timer after the last failure before the error surfaces.
    assert [e.event_id for e in of_type(events, EventType.TASK_SCHEDULED)] == [0, 2, 4]
    assert [e.event_id for e in of_type(events, EventType.TIMER_CREATED)] == [1, 3, 5]
    assert [e.timer_id for e in of_type(events, EventType.TIMER_FIRED)] == [1, 3, 5]
    assert probe().calls[key] == 3


async def test_a_single_attempt_policy_does_not_retry(engine: DurableEngine) -> None:
    key = unique("retry-once")
    spec = {"key": key, "fail": 1, "interval": 10, "attempts": 1}
    status = await finish(engine, await start(engine, "retry_one", spec))
    assert status.runtime_status is RuntimeStatus.FAILED
    assert probe().calls[key] == 1


async def test_retries_inside_a_fan_out(engine: DurableEngine) -> None:
    prefix = unique("fan-retry")
    spec = {"prefix": prefix, "fails": [1, 0, 2, 1], "interval": 10}
    status = await finish(engine, await start(engine, "retry_fan_out", spec))
    assert output(status) == [
        f"{prefix}-0 ok after 2",
        f"{prefix}-1 ok after 1",
        f"{prefix}-2 ok after 3",
        f"{prefix}-3 ok after 2",
    ]


def test_retry_delay_follows_every_retry_option() -> None:
    """The SDK's RetryOptions only carries firstRetryInterval and maxNumberOfAttempts;
    the delay computation also honours DurableTask's backoff and cap when present."""
    first = {"firstRetryIntervalInMilliseconds": 100, "maxNumberOfAttempts": 5}
    assert retry_delay(first, 1) == timedelta(milliseconds=100)
    assert retry_delay(first, 4) == timedelta(milliseconds=100)
    backoff = {**first, "backoffCoefficient": 2.0, "maxRetryIntervalInMilliseconds": 300}
    delays = [retry_delay(backoff, attempt) for attempt in (1, 2, 3, 4)]
    assert delays == [timedelta(milliseconds=ms) for ms in (100, 200, 300, 300)]


# -- sub-orchestrations ------------------------------------------------------------------


async def test_sub_orchestrations_generated_explicit_and_retried(engine: DurableEngine) -> None:
    key = unique("sub")
    child_id = unique("explicit-child")
    spec = {"key": key, "child_id": child_id, "interval": 10}
    instance_id = await start(engine, "parent", spec)
    status = await finish(engine, instance_id)
    assert output(status) == [["Hello Oslo!"], 0 + 1 + 4, f"{key} ok after 2"]
    explicit = await engine.get_status(child_id)
    assert explicit is not None
    assert explicit.runtime_status is RuntimeStatus.COMPLETED
    assert explicit.parent_instance_id == instance_id
    events = await history(engine, instance_id)
    created = of_type(events, EventType.SUB_ORCHESTRATION_INSTANCE_CREATED)
    # chain (0), fan_out (1), retried child: attempt 2, retry timer 3, attempt 4.
    assert [(e.event_id, e.name) for e in created] == [
        (0, "chain"),
        (1, "fan_out"),
        (2, "child_fails_once"),
        (4, "child_fails_once"),
    ]
    assert created[1].instance_id == child_id
    generated = [e.instance_id for e in created if e.instance_id != child_id]
    assert len(set(generated)) == 3
    statuses = [await engine.get_status(str(child)) for child in generated]
    assert [s.runtime_status if s else None for s in statuses] == [
        RuntimeStatus.COMPLETED,
        RuntimeStatus.FAILED,
        RuntimeStatus.COMPLETED,
    ]


async def test_a_retried_sub_orchestration_keeps_its_explicit_id(engine: DurableEngine) -> None:
    key, child_id = unique("named-retry"), unique("kid")
    spec = {"key": key, "fail": 1, "child_id": child_id}
    instance_id = await start(engine, "sub_retry_named", spec)
    assert output(await finish(engine, instance_id)) == f"{key} ok after 2"
    child = await engine.get_status(child_id)
    assert child is not None and child.runtime_status is RuntimeStatus.COMPLETED
    assert child.parent_instance_id == instance_id


async def test_a_failing_child_fails_in_the_parent(engine: DurableEngine) -> None:
    status = await finish(engine, await start(engine, "parent_of_failure"))
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert output(status).startswith("caught: ")
    assert "child exploded" in output(status)

    key = unique("uncaught-child")
    status = await finish(engine, await start(engine, "rewind_parent", {"key": key, "fail": 1}))
    assert status.runtime_status is RuntimeStatus.FAILED
    assert f"transient failure 1 of {key}" in output(status)


async def test_a_sub_orchestration_cannot_take_over_a_running_instance(
    engine: DurableEngine,
) -> None:
    taken = unique("taken")
    await start(engine, "wait_forever", instance_id=taken)
    await wait_until(lambda: waits_for_event(engine, taken), what="the first instance to wait")
    before = await history(engine, taken)
    parent_id = await start(engine, "parent_of_waiter", taken)
    await wait_until(lambda: waits_for_event(engine, parent_id), what="the parent's first episode")
    status = await engine.get_status(taken, show_history=True)
    assert status is not None and status.history is not None
    assert (status.parent_instance_id, len(status.history)) == (None, len(before))
    await engine.raise_event(taken, "never", '"mine"')
    assert output(await finish(engine, taken, within=3)) == "mine"


# -- durable timers ----------------------------------------------------------------------


async def test_durable_timer_fires_at_its_time(engine: DurableEngine) -> None:
    instance_id = await start(engine, "durable_timer", 50)
    status = await finish(engine, instance_id)
    # current_utc_datetime after the timer is the firing episode's time: never early.
    assert output(status) >= 50
    events = await history(engine, instance_id)
    [created] = of_type(events, EventType.TIMER_CREATED)
    [fired] = of_type(events, EventType.TIMER_FIRED)
    started = of_type(events, EventType.ORCHESTRATOR_STARTED)[0]
    assert created.fire_at == started.timestamp + timedelta(milliseconds=50)
    assert (fired.timer_id, fired.fire_at) == (created.event_id, created.fire_at)


async def test_timers_fire_when_the_clock_says_so(tmp_path: Path) -> None:
    """With a clock the test controls, an hour-long timer fires as soon as it is due."""
    clock = SteppingClock()
    async with running_engine(tmp_path / "hub.sqlite3", clock=clock) as engine:
        instance_id = await start(engine, "durable_timer", 3_600_000)
        await settle(engine, clock)
        status = await engine.get_status(instance_id)
        assert status is not None and status.runtime_status is RuntimeStatus.RUNNING
        status = await drive_until_done(engine, clock, instance_id, within=2)
        assert output(status) == 3_600_000


# -- external events ---------------------------------------------------------------------


async def test_events_raised_before_the_wait_are_buffered_in_order(engine: DurableEngine) -> None:
    instance_id = await start(engine, "collect_events", 3)
    for n in range(3):
        await engine.raise_event(instance_id, "item", json.dumps({"n": n}))
    status = await finish(engine, instance_id)
    assert output(status) == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_several_events_of_one_name_while_waiting(engine: DurableEngine) -> None:
    instance_id = await start(engine, "collect_events", 3)
    await wait_until(lambda: waits_for_event(engine, instance_id), what="the first wait")
    for n in range(3):
        await engine.raise_event(instance_id, "item", json.dumps(n))
    status = await finish(engine, instance_id)
    assert output(status) == [0, 1, 2]
    raised = of_type(await history(engine, instance_id), EventType.EVENT_RAISED)
    assert [(e.name, e.input) for e in raised] == [("item", "0"), ("item", "1"), ("item", "2")]


async def test_many_events_arrive_in_the_order_they_were_raised(engine: DurableEngine) -> None:
    instance_id = await start(engine, "collect_events", 50)
    for n in range(50):
        await engine.raise_event(instance_id, "item", str(n))
    assert output(await finish(engine, instance_id)) == list(range(50))


async def test_an_event_without_data_arrives_as_none(engine: DurableEngine) -> None:
    instance_id = await start(engine, "collect_events", 1)
    await engine.raise_event(instance_id, "item", None)
    assert output(await finish(engine, instance_id)) == [None]


async def test_events_for_unknown_or_finished_instances_are_refused(engine: DurableEngine) -> None:
    with pytest.raises(InstanceNotFoundError):
        await engine.raise_event("no-such-instance", "item", "1")
    instance_id = await start(engine, "collect_events", 0)
    await finish(engine, instance_id)
    with pytest.raises(InstanceFinishedError) as caught:
        await engine.raise_event(instance_id, "item", "1")
    assert "Completed" in str(caught.value)


# -- task_any with timers ----------------------------------------------------------------


async def test_event_beats_timer_and_the_timer_is_cancelled(engine: DurableEngine) -> None:
    instance_id = await start(engine, "approval", 3_600_000)
    await wait_until(lambda: waits_for_event(engine, instance_id), what="the race to start")
    await engine.raise_event(instance_id, "approve", json.dumps("ann"))
    status = await finish(engine, instance_id)
    assert output(status) == {"approved": "Hello ann!"}
    assert of_type(await history(engine, instance_id), EventType.TIMER_FIRED) == []
    # The hour-long timer left nothing behind.
    assert [m for m in engine.store.pending_messages() if m.instance_id == instance_id] == []


async def test_timer_beats_event(engine: DurableEngine) -> None:
    instance_id = await start(engine, "approval", 20)
    status = await finish(engine, instance_id)
    assert output(status) == "timeout"
    [fired] = of_type(await history(engine, instance_id), EventType.TIMER_FIRED)
    assert fired.timer_id == 0
    with pytest.raises(InstanceFinishedError):
        await engine.raise_event(instance_id, "approve", '"late"')


async def test_a_timer_cancelled_as_the_orchestration_ends_leaves_nothing(
    engine: DurableEngine,
) -> None:
    instance_id = await start(engine, "activity_beats_timer")
    status = await finish(engine, instance_id)
    assert output(status) == "Hello race!"
    assert [m for m in engine.store.pending_messages() if m.instance_id == instance_id] == []


# -- continue_as_new ---------------------------------------------------------------------


async def test_continue_as_new_over_several_generations(engine: DurableEngine) -> None:
    instance_id = await start(engine, "counter", {"n": 0, "until": 4})
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert output(status) == 4
    events = await history(engine, instance_id)
    # Only the last generation's history is kept.
    [started] = of_type(events, EventType.EXECUTION_STARTED)
    assert json.loads(started.input or "null") == {"n": 4, "until": 4}
    assert of_type(events, EventType.TIMER_CREATED) == []
    assert engine.store.pending_messages() == []


async def test_an_event_raised_before_the_new_generation_waits_is_kept(tmp_path: Path) -> None:
    clock = SteppingClock()
    async with running_engine(tmp_path / "hub.sqlite3", clock=clock) as engine:
        instance_id = await start(engine, "continue_then_wait", {"generation": 0, "ms": 50})

        async def raise_in_generation_1(step: int) -> None:
            if step == 1:
                await engine.raise_event(instance_id, "go", '"buffered"')

        status = await drive_until_done(
            engine, clock, instance_id, between_steps=raise_in_generation_1
        )
        assert output(status) == [1, "buffered"]


async def test_an_event_raised_while_the_old_generation_waits_carries_over(
    tmp_path: Path,
) -> None:
    clock = SteppingClock()
    async with running_engine(tmp_path / "hub.sqlite3", clock=clock) as engine:
        instance_id = await start(engine, "continue_then_wait", {"generation": 0, "ms": 50})

        async def raise_in_generation_0(step: int) -> None:
            if step == 0:
                await engine.raise_event(instance_id, "go", '"early"')

        status = await drive_until_done(
            engine, clock, instance_id, between_steps=raise_in_generation_0, within=5
        )
        assert output(status) == [1, "early"]


async def test_an_event_raised_with_the_start_of_a_continuing_orchestration_carries_over(
    engine: DurableEngine,
) -> None:
    instance_id = await start(engine, "continue_at_once", 0)
    await engine.raise_event(instance_id, "go", '"early"')
    status = await finish(engine, instance_id, within=1.5)
    assert output(status) == ["Hello generation 1!", "early"]


# -- custom status and determinism -------------------------------------------------------


async def test_custom_status_is_visible_while_running_and_after(engine: DurableEngine) -> None:
    instance_id = await start(engine, "custom_status")

    async def shows_waiting() -> bool:
        status = await engine.get_status(instance_id)
        return status is not None and status.custom_status == json.dumps({"stage": "waiting"})

    await wait_until(shows_waiting, what="the custom status")
    await engine.raise_event(instance_id, "continue", "5")
    status = await finish(engine, instance_id)
    assert output(status) == 5
    assert json.loads(status.custom_status or "null") == {"stage": "done", "value": 5}


async def test_time_and_uuids_are_the_same_on_every_replay(tmp_path: Path) -> None:
    """With extended sessions off, every episode replays the orchestrator from the
    start: each step must see the same current_utc_datetime and new_uuid values every
    time, and is_replaying only while it replays."""
    async with running_engine(tmp_path / "hub.sqlite3", extended_sessions=False) as engine:
        instance_id = await start(engine, "deterministic")
        await wait_until(lambda: waits_for_event(engine, instance_id, 2), what="step 1")
        await engine.raise_event(instance_id, "next", None)
        status = await finish(engine, instance_id)
        events = await history(engine, instance_id)
    seen = [o for o in probe().observations if o["instance"] == instance_id]
    by_step = {step: [o for o in seen if o["step"] == step] for step in range(3)}
    # Step 0 runs in all three episodes, step 1 in the last two, step 2 in the last one.
    assert [len(by_step[step]) for step in range(3)] == [3, 2, 1]
    episode_times = [
        e.timestamp.isoformat() for e in of_type(events, EventType.ORCHESTRATOR_STARTED)
    ]
    for step, observations in by_step.items():
        assert {o["now"] for o in observations} == {episode_times[step]}
        assert len({tuple(o["uuids"]) for o in observations}) == 1
        assert [o["replaying"] for o in observations] == [False] + [True] * (len(observations) - 1)
    uuids = [u for step in range(3) for u in by_step[step][0]["uuids"]]
    assert len(set(uuids)) == 6
    assert output(status) == [[by_step[s][0]["now"], by_step[s][0]["uuids"]] for s in range(3)]
