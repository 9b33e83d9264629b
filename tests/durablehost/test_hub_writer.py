"""The hub writer process (durablehost.store.writer): group commits made in a child
process with its own connection are exactly what the host's store reads back; errors
come back to the caller; a dead writer fails loudly and the CLI host exits so that a
restart recovers; a killed host takes its writer with it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import RuntimeStatus
from durablehost.store import SqliteTaskHubStore, open_store
from durablehost.store import writer as writer_module
from durablehost.store.base import ActivityWork, EpisodeCommit, InstanceRecord, Message
from durablehost.store.writer import HubWriterError, ProcessWriter
from tests.support.hostproc import run_host_process

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
SAMPLES = Path(__file__).parent / "apps" / "engine_samples"
MGMT = "runtime/webhooks/durabletask"


def _record(instance_id: str) -> InstanceRecord:
    return InstanceRecord(instance_id, f"exec-{instance_id}", "orch", RuntimeStatus.PENDING, T0, T0)


def _start(record: InstanceRecord) -> Message:
    event = HistoryEvent(EventType.EXECUTION_STARTED, T0, name="orch", input='"in"')
    return Message(record.instance_id, event, execution_id=record.execution_id)


@pytest.fixture
def hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SqliteTaskHubStore, list[str]]]:
    """The host's store (no checkpoints of its own) and the failures reported. Every
    batch goes to the writer process, however small (see test_small_batches_...)."""
    monkeypatch.setattr(writer_module, "_INLINE_BATCH", 0)
    store = open_store(tmp_path / "hub.sqlite3", checkpoints=False)
    failures: list[str] = []
    yield store, failures
    store.close()


async def test_commits_made_by_the_writer_process_read_back_in_the_host(
    hub: tuple[SqliteTaskHubStore, list[str]],
) -> None:
    store, failures = hub
    writer = ProcessWriter(store, on_failure=failures.append)
    try:
        first, second = _record("one"), _record("two")
        created = await writer.create_instances([(first, _start(first)), (second, _start(second))])
        assert all(isinstance(m, Message) and m.message_id > 0 for m in created)
        again = await writer.create_instances([(first, _start(first))])
        assert type(again[0]).__name__ == "InstanceAlreadyExistsError"
        assert "already exists and is Pending" in str(again[0])

        events = [
            HistoryEvent(EventType.ORCHESTRATOR_STARTED, T0, is_played=True),
            HistoryEvent(EventType.TASK_SCHEDULED, T0, event_id=0, name="act", is_played=True),
        ]
        work = ActivityWork("one", first.execution_id, 0, "act", '"x"')
        note = Message("two", HistoryEvent(EventType.EVENT_RAISED, T0, name="go", input="1"))
        commit = EpisodeCommit(
            instance=replace(first, status=RuntimeStatus.RUNNING),
            history=events,
            consumed_message_ids=[created[0].message_id],  # type: ignore[union-attr]
            activities=[work],
            messages=[note],
            history_start=0,
        )
        messages, new_work = await writer.commit_episodes_with_results([commit], [])
    finally:
        writer.close()
    assert failures == []
    assert messages == [note] and note.message_id > 0
    assert new_work == [work] and work.work_id > 0
    assert store.get_history("one") == events
    loaded = store.get_instance("one")
    assert loaded is not None and loaded.status is RuntimeStatus.RUNNING
    assert [(w.work_id, w.name) for w in store.pending_activities()] == [(work.work_id, "act")]
    pending = {m.message_id: m.instance_id for m in store.pending_messages()}
    assert pending == {created[1].message_id: "two", note.message_id: "two"}  # type: ignore[union-attr]


async def test_an_error_in_the_writer_reaches_the_caller_and_undoes_the_batch(
    hub: tuple[SqliteTaskHubStore, list[str]],
) -> None:
    store, failures = hub
    writer = ProcessWriter(store, on_failure=failures.append)
    try:
        record = _record("x")
        await writer.create_instances([(record, _start(record))])
        events = [HistoryEvent(EventType.ORCHESTRATOR_STARTED, T0, is_played=True)]
        await writer.commit_episodes_with_results(
            [EpisodeCommit(instance=record, history=events, history_start=0)], []
        )
        stale = EpisodeCommit(instance=record, history=events, history_start=0)  # seq 0 again
        with pytest.raises(sqlite3.IntegrityError):
            await writer.commit_episodes_with_results([stale], [])
        # Still serving after the error.
        later = EpisodeCommit(instance=record, history=events, history_start=1)
        await writer.commit_episodes_with_results([later], [])
    finally:
        writer.close()
    assert failures == []
    assert store.get_history("x") == events * 2


async def test_the_writer_outlives_signals_meant_for_its_host(
    hub: tuple[SqliteTaskHubStore, list[str]],
) -> None:
    """Ctrl+C reaches the whole process group: the writer must keep serving until its
    host closes it."""
    store, failures = hub
    writer = ProcessWriter(store, on_failure=failures.append)
    try:
        record = _record("z")
        await writer.create_instances([(record, _start(record))])
        pid = writer._process.pid
        assert pid is not None
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        other = _record("z2")
        (message,) = await asyncio.wait_for(writer.create_instances([(other, _start(other))]), 10)
        assert isinstance(message, Message)
    finally:
        writer.close()
    assert failures == []
    assert not writer._process.is_alive()


async def test_a_dead_writer_fails_its_callers_and_reports_once(
    hub: tuple[SqliteTaskHubStore, list[str]],
) -> None:
    store, failures = hub
    writer = ProcessWriter(store, on_failure=failures.append)
    try:
        record = _record("y")
        await writer.create_instances([(record, _start(record))])  # the writer is up
        pid = writer._process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not failures:
            assert time.monotonic() < deadline, "the writer's death was not noticed"
            with pytest.raises(HubWriterError):
                await asyncio.wait_for(writer.create_instances([(record, _start(record))]), 5)
        with pytest.raises(HubWriterError, match="gone"):
            await writer.commit_episodes_with_results([EpisodeCommit(instance=record)], [])
    finally:
        writer.close()
    assert len(failures) == 1 and "gone" in failures[0]


async def test_small_batches_while_the_writer_is_idle_are_committed_in_the_host(
    tmp_path: Path,
) -> None:
    """One instance stepping alone skips the round trip to the writer process: with the
    writer stopped, such commits still succeed; a bigger batch needs the writer."""
    store = open_store(tmp_path / "hub.sqlite3", checkpoints=False)
    failures: list[str] = []
    writer = ProcessWriter(store, on_failure=failures.append)
    try:
        pid = writer._process.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the writer cannot answer now
        try:
            record = _record("solo")
            (message,) = await writer.create_instances([(record, _start(record))])
            assert isinstance(message, Message) and message.message_id > 0
            events = [HistoryEvent(EventType.ORCHESTRATOR_STARTED, T0, is_played=True)]
            await writer.commit_episodes_with_results(
                [EpisodeCommit(instance=record, history=events, history_start=0)], []
            )
            assert store.get_history("solo") == events
            many = [_record(f"many-{n}") for n in range(3)]
            pending = asyncio.ensure_future(writer.create_instances([(r, _start(r)) for r in many]))
            await asyncio.sleep(0.2)
            assert not pending.done()  # waiting for the (stopped) writer process
        finally:
            os.kill(pid, signal.SIGCONT)
        assert all(isinstance(m, Message) for m in await asyncio.wait_for(pending, 10))
    finally:
        writer.close()
        store.close()
    assert failures == []


def _holds_open(process: Path, suffix: str) -> bool:
    try:
        return any(os.readlink(fd).endswith(suffix) for fd in (process / "fd").iterdir())
    except OSError:
        return False  # gone meanwhile


def _writers(pid: int) -> list[int]:
    """The hub writer processes of host `pid`: its multiprocessing children that hold a
    hub file open (its activity worker processes, spawned alike, do not)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) != pid:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"spawn_main" in command and _holds_open(entry, ".sqlite3"):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.e2e
def test_the_host_exits_when_its_writer_dies_and_a_restart_recovers(tmp_path: Path) -> None:
    hub = tmp_path / "hub.sqlite3"
    with run_host_process(SAMPLES, hub=hub) as host:
        with httpx.Client(base_url=host.url, timeout=30) as client:
            started = client.post(f"/{MGMT}/orchestrators/chain", json=["a", "b"])
            assert started.status_code == 202
            instance_id = started.json()["id"]
        _wait(lambda: _writers(host.pid), "the writer process")
        (writer_pid,) = _writers(host.pid)
        os.kill(writer_pid, signal.SIGKILL)
        _wait(lambda: not host.running, "the host to exit")
        assert host.stop() == 70
        assert "hub writer process is gone" in host.logs()

        host.start()
        with httpx.Client(base_url=host.url, timeout=30) as client:
            done = client.get(f"/{MGMT}/instances/{instance_id}")
            deadline = time.monotonic() + 30
            while done.json()["runtimeStatus"] != "Completed":
                assert time.monotonic() < deadline, done.text
                time.sleep(0.05)
                done = client.get(f"/{MGMT}/instances/{instance_id}")
        assert done.json()["output"] == ["Hello a!", "Hello b!"]


@pytest.mark.e2e
def test_a_killed_host_takes_its_writer_with_it(tmp_path: Path) -> None:
    with run_host_process(SAMPLES, hub=tmp_path / "hub.sqlite3") as host:
        _wait(lambda: _writers(host.pid), "the writer process")
        (writer_pid,) = _writers(host.pid)
        host.kill()
        _wait(lambda: not _alive(writer_pid), "the writer to exit", timeout=15)
