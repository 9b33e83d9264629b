"""The hub's records as rows: what SQLite stores, and what the hub writer receives.

Commits are encoded to plain rows (strings and numbers) before they touch SQLite, so the
encoding can happen in the host and the SQL in a writer process
(durablehost.store.writer): such rows pickle several times faster than the records.
History events are stored as compact JSON (orjson).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from durablehost.errors import InstanceAlreadyExistsError
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import RuntimeStatus
from durablehost.store.base import ActivityWork, EpisodeCommit, InstanceRecord, Message
from durablehost.wire.orchestration import format_timestamp, parse_timestamp

__all__ = [
    "EncodedEpisode",
    "EncodedStart",
    "attach_ids",
    "encode_episode",
    "encode_start",
    "event_from_json",
    "event_to_json",
    "instance_from_row",
    "instance_values",
    "message_row",
    "start_outcomes",
]


class EncodedEpisode(NamedTuple):
    """One EpisodeCommit as rows."""

    instance: tuple[Any, ...]  # instance_values; the id first
    consumed_message_ids: list[int]
    drop_pending_work: bool
    canceled_timer_ids: list[int]
    replace_history: bool
    history_start: int | None
    history: list[str]  # event_to_json
    new_instances: list[tuple[Any, ...]]
    messages: list[tuple[Any, ...]]  # message_row
    activities: list[tuple[Any, ...]]


# (instance values, its ExecutionStarted message row)
EncodedStart = tuple[tuple[Any, ...], tuple[Any, ...]]


def encode_episode(commit: EpisodeCommit) -> EncodedEpisode:
    """The rows of one episode's commit."""
    return EncodedEpisode(
        instance_values(commit.instance),
        [i for i in commit.consumed_message_ids if i],  # 0: never stored
        commit.drop_pending_work,
        list(commit.canceled_timer_ids),
        commit.replace_history,
        commit.history_start,
        [event_to_json(event) for event in commit.history],
        [instance_values(child) for child in commit.new_instances],
        [message_row(message) for message in commit.messages],
        [(w.instance_id, w.execution_id, w.task_id, w.name, w.input) for w in commit.activities],
    )


def attach_ids(
    commits: Sequence[EpisodeCommit], ids: Sequence[tuple[list[int], list[int]]]
) -> tuple[list[Message], list[ActivityWork]]:
    """Give the commits' messages and work items the ids `commit_encoded` returned."""
    new_messages: list[Message] = []
    new_work: list[ActivityWork] = []
    for commit, (message_ids, work_ids) in zip(commits, ids, strict=True):
        for message, message_id in zip(commit.messages, message_ids, strict=True):
            message.message_id = message_id
        for work, work_id in zip(commit.activities, work_ids, strict=True):
            work.work_id = work_id
        new_messages += commit.messages
        new_work += commit.activities
    return new_messages, new_work


def encode_start(instance: InstanceRecord, start: Message) -> EncodedStart:
    """The rows of one new instance."""
    return instance_values(instance), message_row(start)


def start_outcomes(
    starts: Sequence[tuple[InstanceRecord, Message]], results: Sequence[int | str]
) -> list[Message | InstanceAlreadyExistsError]:
    """`create_encoded` results as `create_instances` outcomes."""
    outcomes: list[Message | InstanceAlreadyExistsError] = []
    for (instance, start), result in zip(starts, results, strict=True):
        if isinstance(result, str):
            outcomes.append(
                InstanceAlreadyExistsError(
                    instance.instance_id,
                    f"An instance with ID '{instance.instance_id}' already exists and is {result}.",
                )
            )
        else:
            start.message_id = result
            outcomes.append(start)
    return outcomes


def message_row(message: Message) -> tuple[Any, ...]:
    """A message as the messages table's (instance_id, execution_id, event, visible_at,
    timer_id)."""
    event = message.event
    return (
        message.instance_id,
        message.execution_id,
        event_to_json(event),
        format_timestamp(message.visible_at) if message.visible_at else None,
        event.timer_id if event.event_type is EventType.TIMER_FIRED else None,
    )


def instance_values(instance: InstanceRecord) -> tuple[Any, ...]:
    """An instance as the instances table's columns, in their order (INSTANCE_COLUMNS
    of durablehost.store.listing)."""
    return (
        instance.instance_id,
        instance.execution_id,
        instance.name,
        instance.status.value,
        format_timestamp(instance.created_at),
        format_timestamp(instance.updated_at),
        instance.input,
        instance.output,
        instance.custom_status,
        instance.parent_instance_id,
        instance.parent_execution_id,
        instance.parent_task_id,
    )


def instance_from_row(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(
        instance_id=row[0],
        execution_id=row[1],
        name=row[2],
        status=RuntimeStatus(row[3]),
        created_at=parse_timestamp(row[4]),
        updated_at=parse_timestamp(row[5]),
        input=row[6],
        output=row[7],
        custom_status=row[8],
        parent_instance_id=row[9],
        parent_execution_id=row[10],
        parent_task_id=row[11],
    )


# -- history event storage format ---------------------------------------------------
# Short keys keep rows small; only set fields are written. event_to_json spells these
# out one by one; the store round-trip tests (every field of every kind) keep them in step.
_EVENT_FIELDS = (
    ("n", "name"),
    ("v", "version"),
    ("i", "input"),
    ("r", "result"),
    ("rs", "reason"),
    ("d", "details"),
    ("ts", "task_scheduled_id"),
    ("ti", "timer_id"),
    ("ii", "instance_id"),
    ("pi", "parent_instance_id"),
    ("os", "orchestration_status"),
)


# orjson: the history is most of what the hub writes (every event of every episode) and
# reads (every replay after a restart), and orjson encodes these small dicts several
# times faster than json, writing datetimes itself (RFC 3339, Z for UTC; microseconds
# unless zero), so no timestamp is formatted in Python. parse_timestamp reads both that
# and the older text written by format_timestamp.
_DUMP_OPTIONS = orjson.OPT_UTC_Z


def event_to_json(event: HistoryEvent) -> str:
    """A history event as the compact JSON stored in the hub."""
    # Spelled out field by field (no loop over _EVENT_FIELDS): this runs for every event
    # of every episode, and attribute access by name is twice as fast as getattr.
    data: dict[str, Any] = {"t": int(event.event_type), "at": event.timestamp}
    if event.event_id != -1:
        data["id"] = event.event_id
    if event.is_played:
        data["p"] = 1
    if event.name is not None:
        data["n"] = event.name
    if event.version is not None:
        data["v"] = event.version
    if event.input is not None:
        data["i"] = event.input
    if event.result is not None:
        data["r"] = event.result
    if event.reason is not None:
        data["rs"] = event.reason
    if event.details is not None:
        data["d"] = event.details
    if event.task_scheduled_id is not None:
        data["ts"] = event.task_scheduled_id
    if event.timer_id is not None:
        data["ti"] = event.timer_id
    if event.instance_id is not None:
        data["ii"] = event.instance_id
    if event.parent_instance_id is not None:
        data["pi"] = event.parent_instance_id
    if event.orchestration_status is not None:
        data["os"] = event.orchestration_status
    if event.fire_at is not None:
        data["f"] = event.fire_at
    return orjson.dumps(data, option=_DUMP_OPTIONS).decode()


def event_from_json(text: str) -> HistoryEvent:
    """Inverse of event_to_json."""
    data = orjson.loads(text)
    kwargs: dict[str, Any] = {attribute: data.get(key) for key, attribute in _EVENT_FIELDS}
    fire_at = data.get("f")
    return HistoryEvent(
        event_type=EventType(data["t"]),
        timestamp=parse_timestamp(data["at"]),
        event_id=data.get("id", -1),
        is_played=bool(data.get("p")),
        fire_at=parse_timestamp(fire_at) if fire_at else None,
        **kwargs,
    )
