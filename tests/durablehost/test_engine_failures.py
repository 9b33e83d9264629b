"""How failures surface on DurableEngine: user exceptions, unknown names, output that is
not JSON; every case ends in a Failed instance with a message a person can act on, and
nothing hangs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from durablehost.engine.engine import DurableEngine
from durablehost.engine.episodes import execution_started
from durablehost.errors import UnknownFunctionError
from durablehost.model.history import EventType
from durablehost.model.instances import RuntimeStatus
from durablehost.store import InstanceRecord, Message, open_store
from tests.durablehost.engine_fixtures import finish, running_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[DurableEngine]:
    async with running_engine(tmp_path / "hub.sqlite3") as running:
        yield running


async def failed_message(engine: DurableEngine, name: str, value: Any = None) -> str:
    """Start `name`, expect it to fail; returns its output (the failure text)."""
    instance_id = await engine.start_orchestration(name, json.dumps(value))
    status = await finish(engine, instance_id)
    assert status.runtime_status is RuntimeStatus.FAILED, status.output
    text = json.loads(status.output or "null")
    assert isinstance(text, str)
    return text


async def test_an_activity_exception_keeps_message_and_traceback(engine: DurableEngine) -> None:
    text = await failed_message(engine, "failing", "disk full on /data")
    assert "Orchestrator function 'failing' failed" in text
    assert "Activity function 'boom' failed: ValueError: disk full on /data" in text
    # The traceback points at the user's code, not at the host.
    assert "Traceback (most recent call last)" in text
    assert "function_app.py" in text and "in boom" in text
    assert "durablehost/app/activity_invocation.py" not in text


async def test_activity_failure_details_are_in_the_history(engine: DurableEngine) -> None:
    instance_id = await engine.start_orchestration("failing", json.dumps("bad input"))
    await finish(engine, instance_id)
    status = await engine.get_status(instance_id, show_history=True)
    assert status is not None and status.history is not None
    [failed] = [e for e in status.history if e.event_type is EventType.TASK_FAILED]
    assert failed.reason == "Activity function 'boom' failed: ValueError: bad input"
    assert failed.details is not None and "raise ValueError(message)" in failed.details


async def test_an_orchestrator_exception_fails_the_instance(engine: DurableEngine) -> None:
    text = await failed_message(engine, "raising")
    assert "Orchestrator function 'raising' failed" in text
    assert "orchestrator code failed" in text


async def test_output_that_is_not_json_fails_clearly(engine: DurableEngine) -> None:
    text = await failed_message(engine, "bad_output")
    assert "Orchestrator function 'bad_output' failed" in text
    assert "object" in text


async def test_starting_an_unknown_orchestrator_is_refused(engine: DurableEngine) -> None:
    with pytest.raises(UnknownFunctionError) as caught:
        await engine.start_orchestration("no_such_orchestrator", None)
    message = str(caught.value)
    assert "'no_such_orchestrator'" in message
    assert "chain" in message  # the known names help the user spot a typo
    # An activity is not an orchestrator either.
    with pytest.raises(UnknownFunctionError):
        await engine.start_orchestration("say_hello", None)
    assert engine.store.pending_messages() == []


async def test_an_unknown_activity_fails_the_instance(engine: DurableEngine) -> None:
    text = await failed_message(engine, "calls_unknown_activity")
    assert "The activity function 'no_such_activity' doesn't exist" in text
    assert "say_hello" in text
    assert engine.store.pending_activities() == []


async def test_an_unknown_sub_orchestrator_fails_the_instance(engine: DurableEngine) -> None:
    text = await failed_message(engine, "calls_unknown_orchestrator")
    assert "The orchestrator function 'no_such_orchestrator' doesn't exist" in text


async def test_a_stored_instance_of_a_vanished_orchestrator_fails_on_start(
    tmp_path: Path,
) -> None:
    """The app changed between runs: an instance in the hub names an orchestrator the
    app no longer has. It fails with a clear message instead of waiting forever."""
    hub = tmp_path / "hub.sqlite3"
    now = datetime.now(UTC)
    record = InstanceRecord("orphan", "exec-1", "renamed_away", RuntimeStatus.PENDING, now, now)
    store = open_store(hub)
    store.create_instance(
        record, Message("orphan", execution_started(record, now), execution_id="exec-1")
    )
    store.close()
    async with running_engine(hub) as engine:
        status = await finish(engine, "orphan")
    assert status.runtime_status is RuntimeStatus.FAILED
    text = json.loads(status.output or "null")
    assert "'renamed_away' doesn't exist" in text
    assert "chain" in text


async def test_an_activity_result_that_is_not_json_fails_the_activity(
    engine: DurableEngine,
) -> None:
    text = await failed_message(engine, "call_named", {"activity": "returns_object", "input": 1})
    assert "Activity function 'returns_object' failed" in text
    # The host keeps going.
    instance_id = await engine.start_orchestration("chain", json.dumps(["after"]))
    assert (await finish(engine, instance_id)).runtime_status is RuntimeStatus.COMPLETED


async def test_a_commit_that_fails_is_retried_and_the_instance_completes(
    engine: DurableEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store error while committing episodes (a full disk, a locked file) loses
    nothing: the episodes' messages stay with their instances, which run again later."""
    store = engine.store
    real_commit = store.commit_episodes_with_results
    failures = {"left": 1}

    def failing_once(commits: Any, completed: Any) -> Any:
        if failures["left"] and any(c.activities for c in commits):
            failures["left"] -= 1
            raise OSError("disk full (injected)")
        return real_commit(commits, completed)

    monkeypatch.setattr(store, "commit_episodes_with_results", failing_once)
    instance_id = await engine.start_orchestration("chain", json.dumps(["Oslo", "Rome"]))
    status = await finish(engine, instance_id)
    assert failures["left"] == 0, "the injected failure never happened"
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert json.loads(status.output or "null") == ["Hello Oslo!", "Hello Rome!"]
