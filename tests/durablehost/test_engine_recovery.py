"""Concurrency limits and restarts of DurableEngine on one SQLite hub, in-process.

The restart tests stop an engine with work in flight (engine.stop(), the in-process
stand-in for a crash: nothing is flushed that was not already committed), open a new
engine on the same file, and check that everything completes and that no activity
whose result was committed ran again. Invocations are counted in a file the sample
activities append to, so they are counted across engines.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from durablehost.engine.engine import DurableEngine
from durablehost.engine.episodes import execution_started
from durablehost.model.history import EventType
from durablehost.model.instances import InstanceQuery, RuntimeStatus
from durablehost.store import InstanceRecord, Message, open_store
from tests.durablehost.engine_fixtures import (
    finish,
    probe,
    running_engine,
    samples_index,
    stop_engine,
    wait_until,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def output(status: Any) -> Any:
    return json.loads(status.output) if status.output is not None else None


async def has_event(engine: DurableEngine, instance_id: str, kind: EventType, count: int) -> bool:
    status = await engine.get_status(instance_id, show_history=True)
    if status is None or status.history is None:
        return False  # not created yet
    return sum(1 for e in status.history if e.event_type is kind) >= count


def reset_concurrency_probe() -> None:
    sample = probe()
    with sample.lock:
        sample.in_flight = 0
        sample.max_in_flight = 0


# -- concurrency -------------------------------------------------------------------------


async def test_activity_concurrency_is_bounded(tmp_path: Path) -> None:
    reset_concurrency_probe()
    async with running_engine(tmp_path / "hub.sqlite3", max_concurrent_activities=3) as engine:
        spec = {"activity": "measure", "limit": 3, "count": 12}
        status = await finish(
            engine, await engine.start_orchestration("concurrency", json.dumps(spec))
        )
    assert output(status) == 3
    assert probe().max_in_flight == 3


async def test_the_bound_holds_across_instances(tmp_path: Path) -> None:
    reset_concurrency_probe()
    async with running_engine(tmp_path / "hub.sqlite3", max_concurrent_activities=2) as engine:
        spec = json.dumps({"activity": "measure", "limit": 2, "count": 6})
        ids = [await engine.start_orchestration("concurrency", spec) for _ in range(3)]
        for instance_id in ids:
            assert (await finish(engine, instance_id)).runtime_status is RuntimeStatus.COMPLETED
    assert probe().max_in_flight == 2


async def test_async_activities_are_bounded_too(tmp_path: Path) -> None:
    reset_concurrency_probe()
    async with running_engine(tmp_path / "hub.sqlite3", max_concurrent_activities=3) as engine:
        spec = {"activity": "measure_async", "limit": 3, "count": 12}
        status = await finish(
            engine, await engine.start_orchestration("concurrency", json.dumps(spec))
        )
    assert output(status) == 3
    assert probe().max_in_flight == 3


# -- restarts ----------------------------------------------------------------------------


async def test_stop_is_not_lost_to_a_timer_wakeup(tmp_path: Path) -> None:
    store = open_store(tmp_path / "hub.sqlite3")
    engine = DurableEngine(samples_index(), store)
    await engine.start()
    try:
        await engine.start_orchestration("durable_timer", "3600000")
        await wait_until(lambda: any(m.visible_at for m in store.pending_messages()))
        engine.recheck_timers()
        async with asyncio.timeout(1):
            await engine.stop()
    finally:
        await stop_engine(engine)
        store.close()


async def test_work_in_flight_completes_after_a_restart_without_rerunning_committed_work(
    tmp_path: Path,
) -> None:
    hub, log = tmp_path / "hub.sqlite3", tmp_path / "calls.log"
    gate = probe().gate
    gate.clear()
    gated = [unique("gated") for _ in range(4)]
    timed = [unique("timed") for _ in range(4)]
    waiting_before = probe().gated_waiting
    try:
        async with running_engine(hub) as engine:
            for key in gated + timed:
                spec = {"key": key, "log": str(log), "gated": key in gated, "ms": 300}
                await engine.start_orchestration("recoverable", json.dumps(spec), key)
            # Wait until each holds committed work and has more in flight: a gated
            # activity running in a thread, or a durable timer not yet due.
            for key in gated:
                await wait_until(
                    lambda key=key: has_event(engine, key, EventType.TASK_SCHEDULED, 2),
                    what=f"{key} to reach its gated activity",
                )
            for key in timed:
                await wait_until(
                    lambda key=key: has_event(engine, key, EventType.TIMER_CREATED, 1),
                    what=f"{key} to reach its timer",
                )
            # Scheduled is not enough: stop only once every gated activity is running in
            # a pool thread (a queued one would be cancelled by the stop, never to log).
            await wait_until(
                lambda: probe().gated_waiting >= waiting_before + len(gated),
                what="every gated activity to be running",
            )
        # The engine is stopped and its hub closed; let the orphaned gated threads end
        # (their results are lost with the old engine) before the new one starts.
    finally:
        gate.set()
    await wait_until(
        lambda: (
            Counter(log.read_text().split())[f"{gated[-1]}-b"] >= 1
            and all(f"{key}-b" in log.read_text().split() for key in gated)
        ),
        what="the old engine's activities to end",
    )

    async with running_engine(hub) as engine:
        for key in gated:
            status = await finish(engine, key)
            assert output(status) == [f"{key}-A".upper(), f"{key}-B".upper(), f"{key}-C".upper()]
        for key in timed:
            status = await finish(engine, key)
            assert output(status) == [f"{key}-A".upper(), "TIMER", f"{key}-C".upper()]
        assert engine.store.pending_messages() == []
        assert engine.store.pending_activities() == []

    calls = Counter(log.read_text().split())
    for key in gated + timed:
        # Committed before the stop: never run again.
        assert calls[f"{key}-a"] == 1, key
        assert calls[f"{key}-c"] == 1, key
    for key in gated:
        # In flight at the stop and never committed: run again (at least once).
        assert calls[f"{key}-b"] == 2, key


def committed_keys(hub: Path) -> set[str]:
    """Keys of the record_call activities whose result the hub holds (in a history or
    as a message not yet delivered): the results that must never be computed again."""
    store = open_store(hub)
    try:
        keys: set[str] = set()
        for instance in store.list_instances(InstanceQuery())[0]:
            events = store.get_history(instance.instance_id)
            inputs = {
                e.event_id: json.loads(e.input or "null")
                for e in events
                if e.event_type is EventType.TASK_SCHEDULED
            }
            done = {e.task_scheduled_id for e in events if e.event_type is EventType.TASK_COMPLETED}
            done |= {
                m.event.task_scheduled_id
                for m in store.pending_messages()
                if m.instance_id == instance.instance_id
                and m.event.event_type is EventType.TASK_COMPLETED
            }
            keys |= {inputs[task_id]["key"] for task_id in done if task_id in inputs}
        return keys
    finally:
        store.close()


async def test_a_fan_out_stopped_half_way_never_recomputes_a_committed_result(
    tmp_path: Path,
) -> None:
    hub, log = tmp_path / "hub.sqlite3", tmp_path / "calls.log"
    prefixes = [unique("fan") for _ in range(3)]
    async with running_engine(hub, max_concurrent_activities=4) as engine:
        for prefix in prefixes:
            spec = {"prefix": prefix, "log": str(log), "count": 40}
            await engine.start_orchestration("record_fan_out", json.dumps(spec), prefix)
        # Stop somewhere in the middle: some results committed, some in flight.
        await wait_until(
            lambda: log.exists() and len(log.read_text().split()) >= 30, what="some calls"
        )
    committed = committed_keys(hub)
    assert committed, "nothing was committed before the stop"

    async with running_engine(hub, max_concurrent_activities=4) as engine:
        for prefix in prefixes:
            status = await finish(engine, prefix)
            assert output(status) == [f"{prefix}-{n}".upper() for n in range(40)]
    calls = Counter(log.read_text().split())
    everything = {f"{prefix}-{n}" for prefix in prefixes for n in range(40)}
    assert set(calls) == everything
    assert {key for key in committed if calls[key] != 1} == set()


async def test_a_suspended_instance_stays_suspended_across_a_restart(tmp_path: Path) -> None:
    hub = tmp_path / "hub.sqlite3"
    async with running_engine(hub) as engine:
        instance_id = await engine.start_orchestration("suspendable", None)
        await wait_until(
            lambda: has_event(engine, instance_id, EventType.ORCHESTRATOR_COMPLETED, 2),
            what="the wait for 'go'",
        )
        await engine.suspend(instance_id, None)
        await engine.raise_event(instance_id, "go", '"after restart"')
    async with running_engine(hub) as engine:
        status = await engine.wait_for_completion(instance_id, 0.2)
        assert status is not None and status.runtime_status is RuntimeStatus.SUSPENDED
        await engine.resume(instance_id, None)
        status = await finish(engine, instance_id)
    assert output(status) == ["Hello before!", "after restart", "Hello after!"]


async def test_a_start_accepted_before_a_restart_runs_after_it(tmp_path: Path) -> None:
    hub = tmp_path / "hub.sqlite3"
    now = datetime.now(UTC)
    record = InstanceRecord(
        "accepted", "exec-1", "chain", RuntimeStatus.PENDING, now, now, input='["Lima"]'
    )
    store = open_store(hub)
    store.create_instance(
        record, Message("accepted", execution_started(record, now), execution_id="exec-1")
    )
    store.close()
    async with running_engine(hub) as engine:
        assert output(await finish(engine, "accepted")) == ["Hello Lima!"]


async def test_accepted_starts_and_events_survive_an_immediate_stop(tmp_path: Path) -> None:
    """Once start_orchestration / raise_event return, the work is durable: stopping the
    engine before it ran anything loses nothing."""
    hub = tmp_path / "hub.sqlite3"
    async with running_engine(hub) as engine:
        chain_id = await engine.start_orchestration("chain", json.dumps(["Quito"]))
        events_id = await engine.start_orchestration("collect_events", "2")
        await engine.raise_event(events_id, "item", '"one"')
        await engine.raise_event(events_id, "item", '"two"')
    async with running_engine(hub) as engine:
        assert output(await finish(engine, chain_id)) == ["Hello Quito!"]
        assert output(await finish(engine, events_id)) == ["one", "two"]


async def test_replay_after_a_restart_sees_the_same_time_and_uuids(tmp_path: Path) -> None:
    """Extended sessions keep the orchestrator alive between episodes; after a restart
    it is rebuilt by a full replay, which must see exactly what the live run saw."""
    hub = tmp_path / "hub.sqlite3"
    async with running_engine(hub) as engine:
        instance_id = await engine.start_orchestration("deterministic", None)
        await wait_until(
            lambda: has_event(engine, instance_id, EventType.ORCHESTRATOR_COMPLETED, 2),
            what="the wait for 'next'",
        )
    async with running_engine(hub) as engine:
        await engine.raise_event(instance_id, "next", None)
        status = await finish(engine, instance_id)
    seen = [o for o in probe().observations if o["instance"] == instance_id]
    live = {o["step"]: o for o in seen if not o["replaying"]}
    replayed = [o for o in seen if o["replaying"]]
    assert sorted(live) == [0, 1, 2]
    assert sorted(o["step"] for o in replayed) == [0, 1]
    for observation in replayed:
        original = live[observation["step"]]
        assert (observation["now"], observation["uuids"]) == (original["now"], original["uuids"])
    assert output(status) == [[live[s]["now"], live[s]["uuids"]] for s in range(3)]


async def test_a_timer_due_during_downtime_fires_after_the_restart(tmp_path: Path) -> None:
    hub = tmp_path / "hub.sqlite3"
    async with running_engine(hub) as engine:
        instance_id = await engine.start_orchestration("durable_timer", "100")
        await wait_until(lambda: has_event(engine, instance_id, EventType.TIMER_CREATED, 1))
    async with running_engine(hub) as engine:
        status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert output(status) >= 100


async def test_a_purged_parent_leaves_no_message_behind(tmp_path: Path) -> None:
    """A parent terminated and purged while its child still runs: the child's completion
    notice to the parent must not stay in the hub for ever."""
    async with running_engine(tmp_path / "hub.sqlite3") as engine:
        child_id = unique("child")
        parent_id = await engine.start_orchestration("parent_of_waiter", json.dumps(child_id))
        await wait_until(lambda: has_event(engine, child_id, EventType.ORCHESTRATOR_COMPLETED, 1))
        await engine.terminate(parent_id, "parent gives up")
        await finish(engine, parent_id)
        assert await engine.purge(parent_id) == 1
        child = await engine.get_status(child_id)
        assert child is not None and child.runtime_status is RuntimeStatus.RUNNING
        await engine.raise_event(child_id, "never", '"done"')
        await finish(engine, child_id)
        await wait_until(
            lambda: not [m for m in engine.store.pending_messages() if m.instance_id == parent_id],
            within=1.0,
            what="the notice to the purged parent to be dropped",
        )
