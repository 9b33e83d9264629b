"""The TaskHubStore contract: every store implementation must pass these tests.

To check another backend, add one entry to STORE_BACKENDS: a name and a function that
opens the store at a location inside the test's tmp_path (the same location twice
must open the same hub, for the durability tests). What is about SQLite itself (schema
version, WAL, open_store) is in test_engine_store_sqlite.py. Optional methods the engine
detects (group commits) are tested when a backend has them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from durablehost.errors import InstanceAlreadyExistsError, InvalidInputError
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import InstanceQuery, RuntimeStatus
from durablehost.store import (
    ActivityWork,
    EpisodeCommit,
    InstanceRecord,
    Message,
    SqliteTaskHubStore,
    TaskHubStore,
)

OpenStore = Callable[[Path], TaskHubStore]

STORE_BACKENDS: list[tuple[str, OpenStore]] = [
    ("sqlite", lambda directory: SqliteTaskHubStore(directory / "hub.sqlite3")),
]

T0 = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=[opener for _, opener in STORE_BACKENDS], ids=[n for n, _ in STORE_BACKENDS])
def open_hub(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], TaskHubStore]]:
    """Opens the test's hub (again and again: same location, same data); closes them all."""
    opened: list[TaskHubStore] = []

    def open_again() -> TaskHubStore:
        store = request.param(tmp_path)
        opened.append(store)
        return store

    yield open_again
    for store in opened:
        # Some tests close their store themselves.
        with contextlib.suppress(Exception):
            store.close()


@pytest.fixture
def store(open_hub: Callable[[], TaskHubStore]) -> TaskHubStore:
    return open_hub()


def record(
    instance_id: str,
    *,
    status: RuntimeStatus = RuntimeStatus.PENDING,
    created: datetime = T0,
    name: str = "orchestrator",
    **fields: object,
) -> InstanceRecord:
    return InstanceRecord(
        instance_id=instance_id,
        execution_id=f"exec-{instance_id}",
        name=name,
        status=status,
        created_at=created,
        updated_at=created,
        **fields,  # type: ignore[arg-type]
    )


def started(instance: InstanceRecord) -> Message:
    event = HistoryEvent(
        EventType.EXECUTION_STARTED, instance.created_at, name=instance.name, input=instance.input
    )
    return Message(instance.instance_id, event, execution_id=instance.execution_id)


def raised(instance_id: str, name: str = "evt", data: str = '"x"') -> Message:
    return Message(instance_id, HistoryEvent(EventType.EVENT_RAISED, T0, name=name, input=data))


def timer_fired(instance_id: str, timer_id: int, due: datetime) -> Message:
    event = HistoryEvent(EventType.TIMER_FIRED, due, timer_id=timer_id, fire_at=due)
    return Message(instance_id, event, visible_at=due)


def create(store: TaskHubStore, instance: InstanceRecord) -> Message:
    return store.create_instance(instance, started(instance))


def set_status(store: TaskHubStore, instance_id: str, status: RuntimeStatus) -> None:
    current = store.get_instance(instance_id)
    assert current is not None
    store.commit_episodes([EpisodeCommit(instance=replace(current, status=status))])


def ids(records: list[InstanceRecord]) -> list[str]:
    return [r.instance_id for r in records]


# -- instances ---------------------------------------------------------------------------


def test_create_then_get_returns_every_field(store: TaskHubStore) -> None:
    instance = record(
        "full",
        input='{"a": 1}',
        output='"out"',
        custom_status='{"stage": 1}',
        parent_instance_id="parent",
        parent_execution_id="parent-exec",
        parent_task_id=7,
    )
    message = create(store, instance)
    assert message.message_id > 0
    assert message.event.event_type is EventType.EXECUTION_STARTED
    assert store.get_instance("full") == instance
    loaded = store.get_instance("full")
    assert loaded is not None and loaded.created_at.tzinfo is not None
    assert store.get_instance("missing") is None
    assert store.get_history("missing") == []


def test_create_refuses_an_active_instance_and_changes_nothing(store: TaskHubStore) -> None:
    create(store, record("dup", input='"first"'))
    for status in (RuntimeStatus.PENDING, RuntimeStatus.RUNNING, RuntimeStatus.SUSPENDED):
        set_status(store, "dup", status)
        with pytest.raises(InstanceAlreadyExistsError) as caught:
            create(store, record("dup", input='"second"'))
        assert caught.value.instance_id == "dup"
        assert "dup" in str(caught.value)
        current = store.get_instance("dup")
        assert current is not None and current.input == '"first"'
    assert len(store.pending_messages()) == 1


@pytest.mark.parametrize(
    "status",
    [
        RuntimeStatus.COMPLETED,
        RuntimeStatus.FAILED,
        RuntimeStatus.TERMINATED,
        RuntimeStatus.CANCELED,
    ],
)
def test_create_replaces_a_terminal_instance_with_a_fresh_one(
    store: TaskHubStore, status: RuntimeStatus
) -> None:
    first = record("again", input='"first"')
    create(store, first)
    store.enqueue([raised("again")])
    store.commit_episodes(
        [
            EpisodeCommit(
                instance=replace(first, status=status, output='"done"'),
                history=[HistoryEvent(EventType.ORCHESTRATOR_STARTED, T0)],
                activities=[ActivityWork("again", first.execution_id, 0, "act", None)],
            )
        ]
    )
    second = replace(record("again", input='"second"'), execution_id="exec-2")
    message = create(store, second)
    assert store.get_instance("again") == second
    # The old execution's history, messages and work went with it.
    assert store.get_history("again") == []
    assert [m.message_id for m in store.pending_messages()] == [message.message_id]
    assert store.pending_activities() == []


def test_create_instances_decides_each_start_in_order(store: TaskHubStore) -> None:
    """One batch: new ids are created, an id already active is refused, a terminal one
    is replaced, and a second start of an id the batch itself created is refused."""
    create(store, record("busy", input='"kept"'))
    finished = record("over")
    create(store, finished)
    set_status(store, "over", RuntimeStatus.COMPLETED)
    starts = [
        record("new-1"),
        record("busy", input='"refused"'),
        replace(record("over", input='"fresh"'), execution_id="exec-2"),
        record("new-2"),
        record("new-1", input='"again"'),
    ]
    outcomes = store.create_instances([(s, started(s)) for s in starts])
    assert [type(o).__name__ for o in outcomes] == [
        "Message",
        "InstanceAlreadyExistsError",
        "Message",
        "Message",
        "InstanceAlreadyExistsError",
    ]
    messages = [o for o in outcomes if isinstance(o, Message)]
    assert all(m.message_id > 0 for m in messages)
    assert [m.instance_id for m in messages] == ["new-1", "over", "new-2"]
    assert store.get_instance("new-1") == starts[0]
    busy = store.get_instance("busy")
    assert busy is not None and busy.input == '"kept"'
    assert store.get_instance("over") == starts[2]
    refused = outcomes[4]
    assert isinstance(refused, InstanceAlreadyExistsError) and refused.instance_id == "new-1"
    pending = {m.message_id for m in store.pending_messages()}
    assert {m.message_id for m in messages} <= pending


# -- history ---------------------------------------------------------------------------


def every_kind_of_event() -> list[HistoryEvent]:
    """Events with every optional field set somewhere, to check the round trip."""
    return [
        HistoryEvent(EventType.ORCHESTRATOR_STARTED, T0),
        HistoryEvent(
            EventType.EXECUTION_STARTED,
            T0,
            name="orch",
            version="",
            input='{"k": [1, 2]}',
            parent_instance_id="p",
            is_played=True,
        ),
        HistoryEvent(EventType.TASK_SCHEDULED, T0, event_id=0, name="act", input='"é ☃"'),
        HistoryEvent(EventType.TIMER_CREATED, T0, event_id=1, fire_at=T0 + timedelta(hours=1)),
        HistoryEvent(
            EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
            T0,
            event_id=2,
            name="child",
            instance_id="p:2",
            input="null",
        ),
        HistoryEvent(EventType.TASK_COMPLETED, T0, task_scheduled_id=0, result="42"),
        HistoryEvent(
            EventType.TASK_FAILED, T0, task_scheduled_id=0, reason="boom", details="Traceback"
        ),
        HistoryEvent(EventType.TIMER_FIRED, T0, timer_id=1, fire_at=T0 + timedelta(hours=1)),
        HistoryEvent(EventType.EVENT_RAISED, T0, name="approve", input=None),
        HistoryEvent(
            EventType.EXECUTION_COMPLETED,
            T0 + timedelta(microseconds=1),
            result='"ok"',
            orchestration_status="Completed",
        ),
    ]


def test_history_appends_in_order_and_round_trips_every_field(store: TaskHubStore) -> None:
    instance = record("hist")
    create(store, instance)
    events = every_kind_of_event()
    store.commit_episodes([EpisodeCommit(instance=instance, history=events[:4])])
    store.commit_episodes([EpisodeCommit(instance=instance, history=events[4:])])
    assert store.get_history("hist") == events


def test_replace_history_starts_it_anew(store: TaskHubStore) -> None:
    instance = record("cont")
    create(store, instance)
    events = every_kind_of_event()
    store.commit_episodes([EpisodeCommit(instance=instance, history=events)])
    fresh = [HistoryEvent(EventType.ORCHESTRATOR_STARTED, T0 + timedelta(seconds=5))]
    store.commit_episodes([EpisodeCommit(instance=instance, history=fresh, replace_history=True)])
    assert store.get_history("cont") == fresh
    store.commit_episodes([EpisodeCommit(instance=instance, history=events[1:2])])
    assert store.get_history("cont") == fresh + events[1:2]


def test_history_start_from_the_caller_appends_where_the_store_would(
    store: TaskHubStore,
) -> None:
    instance = record("known")
    create(store, instance)
    events = every_kind_of_event()
    store.commit_episodes([EpisodeCommit(instance=instance, history=events[:3], history_start=0)])
    store.commit_episodes([EpisodeCommit(instance=instance, history=events[3:], history_start=3)])
    assert store.get_history("known") == events


def test_a_stale_history_start_is_refused_and_changes_nothing(store: TaskHubStore) -> None:
    """A caller whose idea of the history is behind the store's (it would overwrite
    stored events) gets an error and the whole batch is undone."""
    instance, other = record("stale"), record("bystander")
    create(store, instance)
    create(store, other)
    events = every_kind_of_event()
    store.commit_episodes([EpisodeCommit(instance=instance, history=events[:3])])
    with pytest.raises(Exception):  # noqa: B017 - each store has its own integrity error
        store.commit_episodes(
            [
                EpisodeCommit(instance=other, history=events[:1], history_start=0),
                EpisodeCommit(instance=instance, history=events[3:], history_start=1),
            ]
        )
    assert store.get_history("stale") == events[:3]
    assert store.get_history("bystander") == []


def test_histories_of_instances_stay_apart(store: TaskHubStore) -> None:
    a, b = record("a"), record("ab")
    create(store, a)
    create(store, b)
    events = every_kind_of_event()
    store.commit_episodes(
        [EpisodeCommit(instance=a, history=events[:2]), EpisodeCommit(instance=b, history=events)]
    )
    assert store.get_history("a") == events[:2]
    assert store.get_history("ab") == events


# -- messages and work -------------------------------------------------------------------


def test_enqueue_assigns_increasing_ids_and_pending_keeps_order_and_visibility(
    store: TaskHubStore,
) -> None:
    due = T0 + timedelta(minutes=5)
    stored = store.enqueue(
        [raised("i1", "first"), timer_fired("i2", 3, due), raised("i1", "second")]
    )
    assert [m.message_id for m in stored] == sorted(m.message_id for m in stored)
    assert len({m.message_id for m in stored}) == 3
    later = store.enqueue([raised("i1", "third")])
    pending = store.pending_messages()
    assert [m.message_id for m in pending] == [m.message_id for m in [*stored, *later]]
    assert [m.event.name for m in pending] == ["first", None, "second", "third"]
    assert pending[1].visible_at == due
    assert pending[1].event.timer_id == 3
    assert pending[0].visible_at is None
    assert pending[0].event == stored[0].event


def test_message_execution_id_round_trips(store: TaskHubStore) -> None:
    message = raised("i")
    message.execution_id = "exec-7"
    store.enqueue([message, raised("i")])
    first, second = store.pending_messages()
    assert (first.execution_id, second.execution_id) == ("exec-7", None)


def test_commit_consumes_messages_and_returns_new_work_with_ids(store: TaskHubStore) -> None:
    instance = record("w")
    start = create(store, instance)
    other = store.enqueue([raised("w", "keep")])[0]
    running = replace(instance, status=RuntimeStatus.RUNNING, custom_status='"busy"')
    child = replace(record("w:1", name="child"), parent_instance_id="w", parent_task_id=1)
    new_messages, new_work = store.commit_episodes(
        [
            EpisodeCommit(
                instance=running,
                history=[HistoryEvent(EventType.ORCHESTRATOR_STARTED, T0)],
                consumed_message_ids=[start.message_id],
                messages=[started(child), timer_fired("w", 2, T0 + timedelta(seconds=1))],
                new_instances=[child],
                activities=[
                    ActivityWork("w", instance.execution_id, 0, "act", '"in"'),
                    ActivityWork("w", instance.execution_id, 3, "act", None),
                ],
            )
        ]
    )
    assert all(m.message_id > 0 for m in new_messages) and len(new_messages) == 2
    assert [w.task_id for w in new_work] == [0, 3]
    assert all(w.work_id > 0 for w in new_work)
    assert store.get_instance("w") == running
    assert store.get_instance("w:1") == child
    pending_ids = [m.message_id for m in store.pending_messages()]
    assert start.message_id not in pending_ids
    assert pending_ids == [other.message_id, *(m.message_id for m in new_messages)]
    assert store.pending_activities() == new_work


def test_commit_replaces_a_stale_child_instance(store: TaskHubStore) -> None:
    parent = record("p")
    create(store, parent)
    old_child = record("p:0", status=RuntimeStatus.FAILED)
    create(store, old_child)
    new_child = replace(record("p:0", name="child"), execution_id="exec-new")
    store.commit_episodes([EpisodeCommit(instance=parent, new_instances=[new_child])])
    assert store.get_instance("p:0") == new_child


def test_commit_is_atomic_when_a_later_part_fails(store: TaskHubStore) -> None:
    """A commit whose last message cannot be stored (its payload is not JSON text but
    an object no store can serialise) leaves every earlier part undone."""
    first, second = record("one"), record("two")
    start_one = create(store, first)
    start_two = create(store, second)
    before = (store.pending_messages(), store.pending_activities())
    unstorable = Message(
        "two",
        HistoryEvent(EventType.EVENT_RAISED, T0, name="bad", input={1, 2}),  # type: ignore[arg-type]
    )
    commits = [
        EpisodeCommit(
            instance=replace(first, status=RuntimeStatus.COMPLETED, output='"done"'),
            history=every_kind_of_event(),
            consumed_message_ids=[start_one.message_id],
            activities=[ActivityWork("one", first.execution_id, 0, "act", None)],
            new_instances=[record("one:0")],
        ),
        EpisodeCommit(
            instance=replace(second, status=RuntimeStatus.RUNNING),
            history=[HistoryEvent(EventType.ORCHESTRATOR_STARTED, T0)],
            consumed_message_ids=[start_two.message_id],
            drop_pending_work=True,
            messages=[raised("one"), unstorable],
        ),
    ]
    with pytest.raises(TypeError):
        store.commit_episodes(commits)
    assert store.get_instance("one") == first
    assert store.get_instance("two") == second
    assert store.get_instance("one:0") is None
    assert store.get_history("one") == [] and store.get_history("two") == []
    assert (store.pending_messages(), store.pending_activities()) == before
    # The store is still usable: the failed transaction released everything.
    store.commit_episodes([EpisodeCommit(instance=replace(first, status=RuntimeStatus.RUNNING))])
    loaded = store.get_instance("one")
    assert loaded is not None and loaded.status is RuntimeStatus.RUNNING


def test_canceled_timers_are_removed_with_the_commit(store: TaskHubStore) -> None:
    instance = record("t")
    create(store, instance)
    due = T0 + timedelta(hours=1)
    store.enqueue(
        [timer_fired("t", 1, due), timer_fired("t", 2, due), timer_fired("t-other", 1, due)]
    )
    store.commit_episodes([EpisodeCommit(instance=instance, canceled_timer_ids=[1])])
    left = [
        (m.instance_id, m.event.timer_id)
        for m in store.pending_messages()
        if m.event.event_type is EventType.TIMER_FIRED
    ]
    assert left == [("t", 2), ("t-other", 1)]


def test_drop_pending_work_clears_only_that_instance(store: TaskHubStore) -> None:
    doomed, bystander = record("doomed"), record("bystander")
    create(store, doomed)
    create(store, bystander)
    store.commit_episodes(
        [
            EpisodeCommit(
                instance=doomed,
                activities=[ActivityWork("doomed", doomed.execution_id, 0, "a", None)],
            ),
            EpisodeCommit(
                instance=bystander,
                activities=[ActivityWork("bystander", bystander.execution_id, 0, "a", None)],
            ),
        ]
    )
    store.enqueue([timer_fired("doomed", 1, T0), raised("bystander")])
    notice = raised("parent", "child finished")
    new_messages, _ = store.commit_episodes(
        [
            EpisodeCommit(
                instance=replace(doomed, status=RuntimeStatus.TERMINATED),
                drop_pending_work=True,
                messages=[notice],
            )
        ]
    )
    assert {m.instance_id for m in store.pending_messages()} == {"bystander", "parent"}
    assert new_messages[0].message_id in [m.message_id for m in store.pending_messages()]
    assert [w.instance_id for w in store.pending_activities()] == ["bystander"]


def test_complete_activity_swaps_work_for_its_result(store: TaskHubStore) -> None:
    instance = record("act")
    create(store, instance)
    _, [work] = store.commit_episodes(
        [
            EpisodeCommit(
                instance=instance,
                activities=[ActivityWork("act", instance.execution_id, 4, "square", "3")],
            )
        ]
    )
    result = Message(
        "act",
        HistoryEvent(EventType.TASK_COMPLETED, T0, task_scheduled_id=4, result="9"),
        execution_id=instance.execution_id,
    )
    stored = store.complete_activities([(work.work_id, result)])[0]
    assert stored is not None and stored.message_id > 0
    assert store.pending_activities() == []
    assert store.pending_messages()[-1].event == result.event
    # Completing it again (a duplicate run) stores nothing.
    count = len(store.pending_messages())
    assert store.complete_activities([(work.work_id, result)])[0] is None
    assert len(store.pending_messages()) == count


def test_complete_activity_of_a_purged_instance_stores_nothing(store: TaskHubStore) -> None:
    instance = record("gone")
    create(store, instance)
    _, [work] = store.commit_episodes(
        [
            EpisodeCommit(
                instance=instance,
                activities=[ActivityWork("gone", instance.execution_id, 0, "a", None)],
            )
        ]
    )
    assert store.delete_instance("gone")
    result = Message("gone", HistoryEvent(EventType.TASK_COMPLETED, T0, task_scheduled_id=0))
    assert store.complete_activities([(work.work_id, result)])[0] is None
    assert store.pending_messages() == []


def test_complete_activities_commits_a_batch_in_one_transaction(store: TaskHubStore) -> None:
    """The engine's group commit of activity results."""
    instance = record("batch")
    create(store, instance)
    _, work = store.commit_episodes(
        [
            EpisodeCommit(
                instance=instance,
                activities=[
                    ActivityWork("batch", instance.execution_id, n, "a", None) for n in range(3)
                ],
            )
        ]
    )

    def result(task_id: int, value: object = "1") -> Message:
        event = HistoryEvent(EventType.TASK_COMPLETED, T0, task_scheduled_id=task_id)
        return Message("batch", replace(event, result=value))  # type: ignore[arg-type]

    before = store.pending_messages()
    # A batch whose last result cannot be stored changes nothing.
    with pytest.raises(TypeError):
        store.complete_activities([(work[0].work_id, result(0)), (work[1].work_id, result(1, {1}))])
    assert store.pending_messages() == before
    assert store.pending_activities() == work

    assert store.delete_instance("batch")
    create(store, instance)
    _, work = store.commit_episodes(
        [
            EpisodeCommit(
                instance=instance,
                activities=[
                    ActivityWork("batch", instance.execution_id, n, "a", None) for n in range(2)
                ],
            )
        ]
    )
    stored = store.complete_activities(
        [(work[0].work_id, result(0)), (10_000, result(9)), (work[1].work_id, result(1))]
    )
    assert [m is not None for m in stored] == [True, False, True]
    assert store.pending_activities() == []
    completed = [
        m.event.task_scheduled_id
        for m in store.pending_messages()
        if m.event.event_type is EventType.TASK_COMPLETED
    ]
    assert completed == [0, 1]


def test_commit_with_results_deletes_the_consumed_work_in_the_same_transaction(
    store: TaskHubStore,
) -> None:
    """Episodes that consume activity results the engine kept in memory delete those
    work items in their own transaction, or not at all."""
    instance = record("steps")
    create(store, instance)
    _, work = store.commit_episodes(
        [
            EpisodeCommit(
                instance=instance,
                activities=[
                    ActivityWork("steps", instance.execution_id, n, "a", None) for n in range(3)
                ],
            )
        ]
    )
    completed = HistoryEvent(EventType.TASK_COMPLETED, T0, task_scheduled_id=0, result="1")
    bad = Message("steps", replace(completed, input={1}))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.commit_episodes_with_results(
            [EpisodeCommit(instance=instance, messages=[bad])], [work[0].work_id]
        )
    assert store.pending_activities() == work

    running = replace(instance, status=RuntimeStatus.RUNNING)
    new_messages, new_work = store.commit_episodes_with_results(
        [
            EpisodeCommit(
                instance=running,
                history=[completed],
                activities=[ActivityWork("steps", instance.execution_id, 3, "a", None)],
            )
        ],
        [work[0].work_id, work[1].work_id],
    )
    assert new_messages == []
    assert [w.task_id for w in store.pending_activities()] == [2, 3]
    assert [w.task_id for w in new_work] == [3]
    assert store.get_history("steps") == [completed]
    assert store.get_instance("steps") == running


def test_pending_activities_are_oldest_first(store: TaskHubStore) -> None:
    instance = record("order")
    create(store, instance)
    for task_id in (5, 1, 3):
        store.commit_episodes(
            [
                EpisodeCommit(
                    instance=instance,
                    activities=[ActivityWork("order", instance.execution_id, task_id, "a", None)],
                )
            ]
        )
    assert [w.task_id for w in store.pending_activities()] == [5, 1, 3]


def test_store_is_safe_to_use_from_several_threads(store: TaskHubStore) -> None:
    def send(thread: int) -> None:
        for n in range(50):
            store.enqueue([raised(f"thread-{thread}", str(n))])

    threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pending = store.pending_messages()
    assert len(pending) == 200
    assert len({m.message_id for m in pending}) == 200


# -- listing -----------------------------------------------------------------------------


def test_list_filters_by_created_range_inclusively(store: TaskHubStore) -> None:
    for minute in range(5):
        create(store, record(f"m{minute}", created=T0 + timedelta(minutes=minute)))
    query = InstanceQuery(
        created_from=T0 + timedelta(minutes=1), created_to=T0 + timedelta(minutes=3)
    )
    records, token = store.list_instances(query)
    assert ids(records) == ["m3", "m2", "m1"] and token is None
    only_from, _ = store.list_instances(InstanceQuery(created_from=T0 + timedelta(minutes=4)))
    assert ids(only_from) == ["m4"]
    only_to, _ = store.list_instances(InstanceQuery(created_to=T0))
    assert ids(only_to) == ["m0"]


def test_list_filters_by_status(store: TaskHubStore) -> None:
    statuses = [
        RuntimeStatus.PENDING,
        RuntimeStatus.RUNNING,
        RuntimeStatus.COMPLETED,
        RuntimeStatus.FAILED,
        RuntimeStatus.SUSPENDED,
    ]
    for n, status in enumerate(statuses):
        create(store, record(f"s{n}", created=T0 + timedelta(seconds=n)))
        set_status(store, f"s{n}", status)
    wanted = frozenset({RuntimeStatus.RUNNING, RuntimeStatus.FAILED})
    records, _ = store.list_instances(InstanceQuery(statuses=wanted))
    assert ids(records) == ["s3", "s1"]
    everything, _ = store.list_instances(InstanceQuery())
    assert len(everything) == 5


def test_list_prefix_takes_percent_and_underscore_literally(store: TaskHubStore) -> None:
    names = ["a%1", "a%2", "a_1", "ab1", "a%", "b%1", "A%1", "a\U0001f600"]
    for n, name in enumerate(names):
        create(store, record(name, created=T0 + timedelta(seconds=n)))

    def prefixed(prefix: str) -> set[str]:
        records, _ = store.list_instances(InstanceQuery(instance_id_prefix=prefix))
        return set(ids(records))

    assert prefixed("a%") == {"a%1", "a%2", "a%"}
    assert prefixed("a_") == {"a_1"}
    assert prefixed("a") == {"a%1", "a%2", "a_1", "ab1", "a%", "a\U0001f600"}
    assert prefixed("a%1") == {"a%1"}
    assert prefixed("zzz") == set()


def test_list_combines_filters(store: TaskHubStore) -> None:
    for n in range(6):
        create(store, record(f"job-{n}", created=T0 + timedelta(seconds=n)))
        create(store, record(f"other-{n}", created=T0 + timedelta(seconds=n)))
        if n % 2:
            set_status(store, f"job-{n}", RuntimeStatus.COMPLETED)
    query = InstanceQuery(
        instance_id_prefix="job-",
        statuses=frozenset({RuntimeStatus.COMPLETED}),
        created_from=T0 + timedelta(seconds=2),
    )
    records, _ = store.list_instances(query)
    assert ids(records) == ["job-5", "job-3"]


@pytest.mark.parametrize("page_size", [1, 4, 7, 25, 100])
def test_paging_is_newest_first_without_gaps_or_duplicates(
    store: TaskHubStore, page_size: int
) -> None:
    # Ties on created time are common (one start per millisecond, bulk starts).
    expected = []
    for n in range(25):
        created = T0 + timedelta(seconds=n // 3)
        create(store, record(f"i{n:02d}", created=created))
        expected.append((created, f"i{n:02d}"))
    expected.sort(reverse=True)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        records, token = store.list_instances(
            InstanceQuery(top=page_size, continuation_token=token)
        )
        pages += 1
        assert len(records) <= page_size
        seen += ids(records)
        if token is None:
            break
        assert pages < 30, "paging does not end"
    assert seen == [instance_id for _, instance_id in expected]
    # The last page carries no token, even when it is full (no empty trailing page).
    assert pages == -(-25 // page_size)


def test_paging_keeps_the_filters(store: TaskHubStore) -> None:
    for n in range(10):
        create(store, record(f"keep-{n}", created=T0 + timedelta(seconds=n)))
        create(store, record(f"skip-{n}", created=T0 + timedelta(seconds=n)))
    seen: list[str] = []
    token: str | None = None
    while True:
        records, token = store.list_instances(
            InstanceQuery(instance_id_prefix="keep-", top=3, continuation_token=token)
        )
        seen += ids(records)
        if token is None:
            break
    assert seen == [f"keep-{n}" for n in reversed(range(10))]


def test_without_top_everything_comes_in_one_page(store: TaskHubStore) -> None:
    for n in range(12):
        create(store, record(f"x{n}", created=T0 + timedelta(seconds=n)))
    records, token = store.list_instances(InstanceQuery())
    assert len(records) == 12 and token is None


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "%%%",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps(5).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, 2, 3]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(None).encode()).decode(),
    ],
)
def test_a_bad_continuation_token_is_invalid_input(store: TaskHubStore, token: str) -> None:
    create(store, record("one"))
    with pytest.raises(InvalidInputError) as caught:
        store.list_instances(InstanceQuery(top=1, continuation_token=token))
    assert "continuation token" in str(caught.value)


# -- purge -------------------------------------------------------------------------------


def test_delete_instance_removes_everything_about_it(store: TaskHubStore) -> None:
    instance = record("purge-me")
    create(store, instance)
    create(store, record("keep-me"))
    store.commit_episodes(
        [
            EpisodeCommit(
                instance=instance,
                history=every_kind_of_event(),
                activities=[ActivityWork("purge-me", instance.execution_id, 0, "a", None)],
            )
        ]
    )
    store.enqueue([timer_fired("purge-me", 1, T0 + timedelta(days=1))])
    assert store.delete_instance("purge-me") is True
    assert store.get_instance("purge-me") is None
    assert store.get_history("purge-me") == []
    assert {m.instance_id for m in store.pending_messages()} == {"keep-me"}
    assert store.pending_activities() == []
    assert store.delete_instance("purge-me") is False
    assert store.delete_instance("never-existed") is False


def test_delete_instances_purges_only_terminal_matches(store: TaskHubStore) -> None:
    layout = {
        "old-done": (RuntimeStatus.COMPLETED, 0),
        "old-failed": (RuntimeStatus.FAILED, 1),
        "old-running": (RuntimeStatus.RUNNING, 2),
        "old-terminated": (RuntimeStatus.TERMINATED, 3),
        "new-done": (RuntimeStatus.COMPLETED, 100),
        "old-suspended": (RuntimeStatus.SUSPENDED, 4),
    }
    for instance_id, (status, seconds) in layout.items():
        create(store, record(instance_id, created=T0 + timedelta(seconds=seconds)))
        set_status(store, instance_id, status)
    deleted = store.delete_instances(InstanceQuery(created_to=T0 + timedelta(seconds=10)))
    assert deleted == 3
    left, _ = store.list_instances(InstanceQuery())
    assert set(ids(left)) == {"old-running", "old-suspended", "new-done"}
    by_status = store.delete_instances(
        InstanceQuery(statuses=frozenset({RuntimeStatus.RUNNING, RuntimeStatus.COMPLETED}))
    )
    assert by_status == 1  # new-done; old-running is active and stays
    assert store.get_instance("old-running") is not None
    assert store.delete_instances(InstanceQuery(instance_id_prefix="nothing")) == 0


# -- durability --------------------------------------------------------------------------


def test_everything_survives_close_and_reopen(open_hub: Callable[[], TaskHubStore]) -> None:
    store = open_hub()
    instance = record("durable", input='"in"', custom_status='"cs"')
    start = create(store, instance)
    events = every_kind_of_event()
    running = replace(instance, status=RuntimeStatus.RUNNING)
    _, work = store.commit_episodes(
        [
            EpisodeCommit(
                instance=running,
                history=events,
                activities=[ActivityWork("durable", instance.execution_id, 0, "act", "1")],
                messages=[timer_fired("durable", 1, T0 + timedelta(hours=2))],
            )
        ]
    )
    messages = store.pending_messages()
    store.close()

    reopened = open_hub()
    assert reopened.get_instance("durable") == running
    assert reopened.get_history("durable") == events
    assert reopened.pending_activities() == work
    assert reopened.pending_messages() == messages
    assert start.message_id in [m.message_id for m in messages]
    # New ids never reuse old ones, so a stale in-memory id cannot hit a new row.
    [fresh] = reopened.enqueue([raised("durable")])
    assert fresh.message_id > max(m.message_id for m in messages)


def test_a_closed_store_refuses_work(open_hub: Callable[[], TaskHubStore]) -> None:
    store = open_hub()
    store.close()
    with pytest.raises(Exception):  # noqa: B017 - which error is backend-specific
        store.get_instance("any")
