"""Managing instances on DurableEngine in-process: suspend/resume, terminate, restart,
rewind, purge, wait_for_completion and listing, over a real SQLite hub.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durablehost.engine.engine import DurableEngine
from durablehost.errors import (
    InstanceAlreadyExistsError,
    InstanceFinishedError,
    InstanceNotFoundError,
    InvalidInstanceStateError,
)
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import InstanceQuery, RuntimeStatus
from tests.durablehost.engine_fixtures import finish, probe, running_engine, wait_until


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[DurableEngine]:
    async with running_engine(tmp_path / "hub.sqlite3") as running:
        yield running


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def start(engine: DurableEngine, name: str, value: Any = None, **kw: Any) -> str:
    return await engine.start_orchestration(name, json.dumps(value), **kw)


async def history(engine: DurableEngine, instance_id: str) -> list[HistoryEvent]:
    status = await engine.get_status(instance_id, show_history=True)
    assert status is not None and status.history is not None
    return list(status.history)


def types(events: list[HistoryEvent]) -> list[EventType]:
    return [event.event_type for event in events]


async def status_is(engine: DurableEngine, instance_id: str, wanted: RuntimeStatus) -> bool:
    status = await engine.get_status(instance_id)
    return status is not None and status.runtime_status is wanted


async def episodes_done(engine: DurableEngine, instance_id: str, count: int) -> bool:
    events = await history(engine, instance_id)
    return types(events).count(EventType.ORCHESTRATOR_COMPLETED) >= count


def output(status: Any) -> Any:
    return json.loads(status.output) if status.output is not None else None


# -- suspend / resume --------------------------------------------------------------------


async def test_events_are_held_while_suspended_and_delivered_on_resume(
    engine: DurableEngine,
) -> None:
    instance_id = await start(engine, "suspendable")
    await wait_until(lambda: episodes_done(engine, instance_id, 2), what="the wait for 'go'")
    await engine.suspend(instance_id, "maintenance")
    await wait_until(lambda: status_is(engine, instance_id, RuntimeStatus.SUSPENDED))
    await engine.raise_event(instance_id, "go", '"went"')
    # A bounded look for something that must NOT happen: it stays suspended.
    status = await engine.wait_for_completion(instance_id, 0.3)
    assert status is not None and status.runtime_status is RuntimeStatus.SUSPENDED
    assert EventType.EVENT_RAISED not in types(await history(engine, instance_id))
    held = [m for m in engine.store.pending_messages() if m.instance_id == instance_id]
    assert [m.event.event_type for m in held] == [EventType.EVENT_RAISED]

    await engine.resume(instance_id, "done")
    status = await finish(engine, instance_id)
    assert output(status) == ["Hello before!", "went", "Hello after!"]
    kinds = types(await history(engine, instance_id))
    suspended = kinds.index(EventType.EXECUTION_SUSPENDED)
    resumed = kinds.index(EventType.EXECUTION_RESUMED)
    assert suspended < resumed < kinds.index(EventType.EVENT_RAISED)


async def test_activity_results_wait_while_suspended(engine: DurableEngine, tmp_path: Path) -> None:
    """A result arriving during suspension is held too, and delivered on resume."""
    gate = probe().gate
    gate.clear()
    spec = {"key": unique("susp"), "log": str(tmp_path / "calls.log"), "gated": True, "ms": 0}
    instance_id = await start(engine, "recoverable", spec)
    try:
        await wait_until(lambda: episodes_done(engine, instance_id, 2), what="the gated call")
        await engine.suspend(instance_id, None)
        await wait_until(lambda: status_is(engine, instance_id, RuntimeStatus.SUSPENDED))
    finally:
        gate.set()
    await wait_until(lambda: not engine.store.pending_activities(), what="the gated call")
    status = await engine.wait_for_completion(instance_id, 0.2)
    assert status is not None and status.runtime_status is RuntimeStatus.SUSPENDED
    await engine.resume(instance_id, None)
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.COMPLETED


async def test_a_suspended_instance_with_held_events_stays_idle(engine: DurableEngine) -> None:
    instance_id = await start(engine, "suspendable")
    await wait_until(lambda: episodes_done(engine, instance_id, 2), what="the wait for 'go'")
    await engine.suspend(instance_id, None)
    await wait_until(lambda: status_is(engine, instance_id, RuntimeStatus.SUSPENDED))
    await engine.raise_event(instance_id, "go", '"held"')
    await wait_until(
        lambda: any(
            m.event.event_type is EventType.EVENT_RAISED
            for m in engine.store.pending_messages()
            if m.instance_id == instance_id
        )
    )
    before = await engine.get_status(instance_id)
    # A bounded look for something that must NOT happen: no further state changes.
    after = await engine.wait_for_completion(instance_id, 0.3)
    assert before is not None and after is not None
    assert after.last_updated_time == before.last_updated_time
    await engine.terminate(instance_id, None)


async def test_suspend_and_resume_of_unknown_or_finished_instances(engine: DurableEngine) -> None:
    for operation in (engine.suspend, engine.resume):
        with pytest.raises(InstanceNotFoundError):
            await operation("nobody", None)
    instance_id = await start(engine, "chain", ["x"])
    await finish(engine, instance_id)
    for operation in (engine.suspend, engine.resume):
        with pytest.raises(InstanceFinishedError):
            await operation(instance_id, None)


# -- terminate ---------------------------------------------------------------------------


async def test_terminate_a_waiting_instance(engine: DurableEngine) -> None:
    instance_id = await start(engine, "wait_forever")
    await wait_until(lambda: status_is(engine, instance_id, RuntimeStatus.RUNNING))
    await engine.terminate(instance_id, "no longer needed")
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.TERMINATED
    assert output(status) == "no longer needed"
    assert types(await history(engine, instance_id))[-1] is EventType.EXECUTION_COMPLETED
    for refused in (
        engine.terminate(instance_id, "again"),
        engine.raise_event(instance_id, "never", "1"),
        engine.suspend(instance_id, None),
    ):
        with pytest.raises(InstanceFinishedError):
            await refused


async def test_terminate_a_pending_instance_before_it_ran(engine: DurableEngine) -> None:
    instance_id = await start(engine, "chain", ["never"])
    await engine.terminate(instance_id, "changed my mind")
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.TERMINATED
    assert EventType.TASK_SCHEDULED not in types(await history(engine, instance_id))
    assert probe().calls["hello:never"] == 0


async def test_concurrent_starts_of_one_id_start_it_once(engine: DurableEngine) -> None:
    """Starts arriving together are committed together (durablehost.engine.start_batch); of
    several with one explicit id exactly one wins, the others hear it exists."""
    instance_id = f"once-{uuid.uuid4().hex}"
    outcomes = await asyncio.gather(
        *(engine.start_orchestration("chain", json.dumps([str(n)]), instance_id) for n in range(5)),
        *(start(engine, "chain", [f"other-{n}"]) for n in range(5)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes[:5] if o == instance_id]
    losers = [o for o in outcomes[:5] if isinstance(o, InstanceAlreadyExistsError)]
    assert (len(winners), len(losers)) == (1, 4)
    others = [str(o) for o in outcomes[5:]]
    assert len(set(others)) == 5
    for started_id in [instance_id, *others]:
        status = await finish(engine, started_id)
        assert status.runtime_status is RuntimeStatus.COMPLETED


async def test_terminate_discards_the_result_of_a_running_activity(
    engine: DurableEngine, tmp_path: Path
) -> None:
    gate = probe().gate
    gate.clear()
    log = tmp_path / "calls.log"
    spec = {"key": unique("term"), "log": str(log), "gated": True, "ms": 0}
    instance_id = await start(engine, "recoverable", spec)
    try:
        await wait_until(lambda: episodes_done(engine, instance_id, 2), what="the gated call")
        await engine.terminate(instance_id, "stop")
        await finish(engine, instance_id)
    finally:
        gate.set()
    # The activity finishes after the termination; its result is dropped with its work.
    await wait_until(lambda: log.read_text().count("-b") == 1, what="the gated call to end")
    await wait_until(lambda: not engine.store.pending_activities())
    status = await engine.get_status(instance_id)
    assert status is not None and status.runtime_status is RuntimeStatus.TERMINATED
    assert [m for m in engine.store.pending_messages() if m.instance_id == instance_id] == []


async def test_terminate_a_suspended_instance(engine: DurableEngine) -> None:
    instance_id = await start(engine, "wait_forever")
    await wait_until(lambda: status_is(engine, instance_id, RuntimeStatus.RUNNING))
    await engine.suspend(instance_id, None)
    await wait_until(lambda: status_is(engine, instance_id, RuntimeStatus.SUSPENDED))
    await engine.terminate(instance_id, "while suspended")
    status = await finish(engine, instance_id)
    assert (status.runtime_status, output(status)) == (RuntimeStatus.TERMINATED, "while suspended")


async def test_terminate_unknown_instance(engine: DurableEngine) -> None:
    with pytest.raises(InstanceNotFoundError):
        await engine.terminate("nobody", None)


# -- restart -----------------------------------------------------------------------------


async def test_restart_with_a_new_id(engine: DurableEngine) -> None:
    first = await start(engine, "chain", ["again"])
    await finish(engine, first)
    second = await engine.restart(first, new_instance_id=True)
    assert second != first
    status = await finish(engine, second)
    assert output(status) == ["Hello again!"]
    old = await engine.get_status(first)
    assert old is not None and old.runtime_status is RuntimeStatus.COMPLETED


async def test_restart_with_the_same_id_starts_a_fresh_history(engine: DurableEngine) -> None:
    instance_id = await start(engine, "chain", ["same"])
    await finish(engine, instance_id)
    assert await engine.restart(instance_id, new_instance_id=False) == instance_id
    status = await finish(engine, instance_id)
    assert output(status) == ["Hello same!"]
    events = await history(engine, instance_id)
    assert types(events).count(EventType.EXECUTION_STARTED) == 1


async def test_restart_refuses_unknown_and_running_same_id(engine: DurableEngine) -> None:
    with pytest.raises(InstanceNotFoundError):
        await engine.restart("nobody")
    instance_id = await start(engine, "wait_forever")
    with pytest.raises(InstanceAlreadyExistsError):
        await engine.restart(instance_id, new_instance_id=False)
    await engine.terminate(instance_id, None)


async def test_starting_an_active_id_again_is_refused(engine: DurableEngine) -> None:
    instance_id = unique("fixed")
    await start(engine, "wait_forever", instance_id=instance_id)
    with pytest.raises(InstanceAlreadyExistsError):
        await start(engine, "chain", ["x"], instance_id=instance_id)
    await engine.terminate(instance_id, None)
    await finish(engine, instance_id)
    await start(engine, "chain", ["y"], instance_id=instance_id)
    assert output(await finish(engine, instance_id)) == ["Hello y!"]


# -- rewind ------------------------------------------------------------------------------


async def test_rewind_reruns_the_failed_activity_only(engine: DurableEngine) -> None:
    key = unique("rewind")
    instance_id = await start(engine, "rewind_parent", {"key": key, "fail": 1})
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.FAILED
    [child_id] = [
        e.instance_id
        for e in await history(engine, instance_id)
        if e.event_type is EventType.SUB_ORCHESTRATION_INSTANCE_CREATED
    ]
    assert child_id is not None

    await engine.rewind(instance_id, "fixed it")
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert output(status) == [f"Hello {key}-before!", f"{key} ok after 2"]
    child = await engine.get_status(child_id)
    assert child is not None and child.runtime_status is RuntimeStatus.COMPLETED
    # What had succeeded was not run again.
    assert probe().calls[f"hello:{key}-before"] == 1
    assert probe().calls[key] == 2


async def test_rewind_of_a_failed_activity_in_the_top_level(engine: DurableEngine) -> None:
    key = unique("flaky")
    instance_id = await start(engine, "child_fails_once", {"key": key, "fail": 1})
    assert (await finish(engine, instance_id)).runtime_status is RuntimeStatus.FAILED
    await engine.rewind(instance_id, None)
    status = await finish(engine, instance_id)
    assert output(status) == f"{key} ok after 2"
    assert EventType.TASK_FAILED not in types(await history(engine, instance_id))


async def test_rewind_of_an_orchestrator_code_failure_replays_it(engine: DurableEngine) -> None:
    """No failed task to re-run: the orchestrator is replayed, fails the same way again,
    and nothing hangs."""
    instance_id = await start(engine, "raising")
    assert (await finish(engine, instance_id)).runtime_status is RuntimeStatus.FAILED
    await engine.rewind(instance_id, None)
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert "orchestrator code failed" in output(status)


async def test_rewind_needs_a_failed_instance(engine: DurableEngine) -> None:
    with pytest.raises(InstanceNotFoundError):
        await engine.rewind("nobody", None)
    instance_id = await start(engine, "chain", ["ok"])
    await finish(engine, instance_id)
    with pytest.raises(InvalidInstanceStateError) as caught:
        await engine.rewind(instance_id, None)
    assert "Completed" in str(caught.value)


# -- purge -------------------------------------------------------------------------------


async def test_purge_one_instance(engine: DurableEngine) -> None:
    instance_id = await start(engine, "chain", ["purge"])
    await finish(engine, instance_id)
    assert await engine.purge(instance_id) == 1
    assert await engine.get_status(instance_id) is None
    assert await engine.purge(instance_id) == 0
    with pytest.raises(InstanceNotFoundError):
        await engine.raise_event(instance_id, "x", None)


async def test_purge_many_deletes_only_finished_matches(engine: DurableEngine) -> None:
    prefix = unique("bulk")
    done = [await start(engine, "chain", [str(n)], instance_id=f"{prefix}-{n}") for n in range(3)]
    running = await start(engine, "wait_forever", instance_id=f"{prefix}-running")
    other = await start(engine, "chain", ["other"])
    for instance_id in [*done, other]:
        await finish(engine, instance_id)
    deleted = await engine.purge_many(InstanceQuery(instance_id_prefix=prefix))
    assert deleted == 3
    for instance_id in done:
        assert await engine.get_status(instance_id) is None
    assert await engine.get_status(running) is not None
    assert await engine.get_status(other) is not None
    await engine.terminate(running, None)


async def test_purge_many_by_created_time_and_status(engine: DurableEngine) -> None:
    instance_id = await start(engine, "chain", ["t"])
    status = await finish(engine, instance_id)
    created = status.created_time
    query = InstanceQuery(
        created_from=created + timedelta(seconds=1),
        statuses=frozenset({RuntimeStatus.COMPLETED}),
    )
    assert await engine.purge_many(query) == 0
    query = InstanceQuery(
        created_from=created,
        created_to=created,
        statuses=frozenset({RuntimeStatus.COMPLETED}),
    )
    assert await engine.purge_many(query) == 1


# -- waiting and listing -----------------------------------------------------------------


async def test_wait_for_completion(engine: DurableEngine) -> None:
    assert await engine.wait_for_completion("nobody", 0.1) is None
    instance_id = await start(engine, "wait_forever")
    status = await engine.wait_for_completion(instance_id, 0.1)
    assert status is not None and status.runtime_status is RuntimeStatus.RUNNING
    assert json.loads(status.custom_status or "null") == "waiting"
    await engine.raise_event(instance_id, "never", '"finally"')
    status = await engine.wait_for_completion(instance_id, 10)
    assert status is not None and status.runtime_status is RuntimeStatus.COMPLETED
    assert output(status) == "finally"
    # Already finished: answers at once.
    again = await engine.wait_for_completion(instance_id, 0)
    assert again == status


async def test_list_instances_through_the_engine(engine: DurableEngine) -> None:
    prefix = unique("list")
    ids = [await start(engine, "chain", [str(n)], instance_id=f"{prefix}-{n}") for n in range(5)]
    for instance_id in ids:
        await finish(engine, instance_id)
    waiting = await start(engine, "wait_forever", instance_id=f"{prefix}-waiting")
    page = await engine.list_instances(InstanceQuery(instance_id_prefix=prefix, top=4))
    assert len(page.instances) == 4 and page.continuation_token is not None
    rest = await engine.list_instances(
        InstanceQuery(instance_id_prefix=prefix, top=4, continuation_token=page.continuation_token)
    )
    listed = [s.instance_id for s in [*page.instances, *rest.instances]]
    assert sorted(listed) == sorted([*ids, waiting]) and rest.continuation_token is None
    finished = await engine.list_instances(
        InstanceQuery(instance_id_prefix=prefix, statuses=frozenset({RuntimeStatus.COMPLETED}))
    )
    assert {s.instance_id for s in finished.instances} == set(ids)
    hidden = await engine.list_instances(InstanceQuery(instance_id_prefix=prefix, show_input=False))
    assert all(s.input is None for s in hidden.instances)
    await engine.terminate(waiting, None)
