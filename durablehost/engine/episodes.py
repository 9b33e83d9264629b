"""Turn one batch of messages for an instance into one atomic EpisodeCommit.

`plan_episode` is deterministic given its inputs (the clock reading is passed in):
it applies terminate/suspend/resume, runs the orchestrator through the executor when
the instance may run, and writes down every consequence: history to append, activity
work, timer messages, sub-orchestration starts, the parent's notification and the
instance's new status.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, overload

from durablehost.app.loader import FunctionInfo
from durablehost.engine.executor import (
    ACTIVITY,
    SUB_ORCHESTRATION,
    TIMER,
    EpisodeOutcome,
    execute_episode,
)
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import TERMINAL_STATUSES, RuntimeStatus
from durablehost.store.base import ActivityWork, EpisodeCommit, InstanceRecord, Message

__all__ = [
    "SCHEDULING_EVENTS",
    "EpisodePlan",
    "HistoryView",
    "plan_episode",
    "sub_orchestration_id",
]

# History events that schedule a task (their EventId is the task id).
SCHEDULING_EVENTS = frozenset(
    {
        EventType.TASK_SCHEDULED,
        EventType.TIMER_CREATED,
        EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
    }
)


@dataclass(slots=True)
class EpisodePlan:
    """The commit, plus what the engine does in memory once it is durable."""

    commit: EpisodeCommit
    held: list[Message] = field(default_factory=list)
    history: Sequence[HistoryEvent] = field(default_factory=list)
    finished: bool = False
    new_scheduled_ids: list[int] = field(default_factory=list)


Executor = Callable[..., EpisodeOutcome]


class HistoryView(Sequence[HistoryEvent]):
    """A stored history followed by an episode's events, without copying the stored
    part (copying it in every episode made N sequential steps cost O(N^2))."""

    __slots__ = ("head", "tail")

    def __init__(self, head: Sequence[HistoryEvent], tail: Sequence[HistoryEvent]) -> None:
        self.head = head
        self.tail = tail

    def __len__(self) -> int:
        return len(self.head) + len(self.tail)

    @overload
    def __getitem__(self, index: int) -> HistoryEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[HistoryEvent]: ...

    def __getitem__(self, index: int | slice) -> HistoryEvent | list[HistoryEvent]:
        split = len(self.head)
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1 and stop <= start:
                return []
            if step == 1:
                # The usual ask, the events after a point: copy only the asked part. A
                # start inside the stored part (the executor's session resumes there when
                # an episode's new events began before its last commit) copied the whole
                # history per episode: a fan-out of 100,000 cost O(N^2).
                if start >= split:
                    return list(self.tail[start - split : stop - split])
                return [*self.head[start : min(stop, split)], *self.tail[: max(stop - split, 0)]]
            return [*self.head, *self.tail][index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.head[index] if index < split else self.tail[index - split]

    def __iter__(self) -> Iterator[HistoryEvent]:
        yield from self.head
        yield from self.tail


def sub_orchestration_id(parent_instance_id: str, task_id: int) -> str:
    """The id a sub-orchestration gets when the caller names none (deterministic)."""
    return f"{parent_instance_id}:{task_id}"


def plan_episode(
    *,
    record: InstanceRecord,
    history: Sequence[HistoryEvent],
    messages: Sequence[Message],
    now: datetime,
    orchestrators: Mapping[str, FunctionInfo],
    activities: Mapping[str, FunctionInfo],
    executor: Executor = execute_episode,
    scheduled_ids: set[int] | None = None,
) -> EpisodePlan:
    """Plan the episode for `record` given the messages waiting for it.

    `history` is the instance's stored history (events already marked played);
    `scheduled_ids`, when the caller keeps it, is the set of task ids scheduled in it
    (saves a scan of the whole history per episode).
    """
    # Messages for an older execution (before a continue-as-new or a restart) are stale.
    current: list[Message] = []
    stale_ids: list[int] = []
    for message in messages:
        if message.execution_id in (None, record.execution_id):
            current.append(message)
        else:
            stale_ids.append(message.message_id)
    if record.status in TERMINAL_STATUSES:
        # Late results for a finished instance (or its old executions) are dropped.
        commit = EpisodeCommit(
            instance=record, consumed_message_ids=[m.message_id for m in messages]
        )
        return EpisodePlan(commit=commit, history=list(history), finished=True)

    terminate = next(
        (m for m in current if m.event.event_type is EventType.EXECUTION_TERMINATED), None
    )
    if terminate is not None:
        return _terminate(record, history, messages, terminate, now)

    status = record.status
    control: list[HistoryEvent] = []
    regular: list[Message] = []
    consumed = list(stale_ids)
    for message in current:
        kind = message.event.event_type
        if kind is EventType.EXECUTION_SUSPENDED:
            consumed.append(message.message_id)
            if status in (RuntimeStatus.RUNNING, RuntimeStatus.PENDING):
                status = RuntimeStatus.SUSPENDED
                control.append(message.event)
        elif kind is EventType.EXECUTION_RESUMED:
            consumed.append(message.message_id)
            if status is RuntimeStatus.SUSPENDED:
                status = RuntimeStatus.RUNNING
                control.append(message.event)
        else:
            regular.append(message)

    if status is RuntimeStatus.SUSPENDED:
        # Only a state change touches the instance: events held while suspended do not.
        instance = record.updated(status, now) if control else record
        appended = [*control] if control else []
        commit = EpisodeCommit(instance=instance, history=appended, consumed_message_ids=consumed)
        return EpisodePlan(commit=commit, held=regular, history=[*history, *appended])

    consumed += [m.message_id for m in regular]
    new_events = sorted(
        (m.event for m in regular),
        key=lambda event: event.event_type is not EventType.EXECUTION_STARTED,
    )
    if not new_events and not control:
        commit = EpisodeCommit(instance=record, consumed_message_ids=consumed)
        return EpisodePlan(commit=commit, history=list(history))
    started = HistoryEvent(EventType.ORCHESTRATOR_STARTED, now)
    episode = [started, *control, *new_events]
    if scheduled_ids is None:
        scheduled_ids = {e.event_id for e in history if e.event_type in SCHEDULING_EVENTS}
    return _run(
        record,
        history,
        episode,
        consumed,
        regular,
        now,
        orchestrators,
        activities,
        executor,
        scheduled_ids,
    )


def _run(
    record: InstanceRecord,
    history: Sequence[HistoryEvent],
    episode: list[HistoryEvent],
    consumed: list[int],
    regular: list[Message],
    now: datetime,
    orchestrators: Mapping[str, FunctionInfo],
    activities: Mapping[str, FunctionInfo],
    executor: Executor,
    scheduled_ids: set[int],
) -> EpisodePlan:
    info = orchestrators.get(record.name)
    full = HistoryView(history, episode)
    if info is None:
        outcome = EpisodeOutcome(
            is_done=True,
            failure=(
                f"The orchestrator function '{record.name}' doesn't exist in this app, "
                "is disabled, or is not an orchestrator function. Registered "
                f"orchestrators: {', '.join(sorted(orchestrators)) or 'none'}.",
                "",
            ),
        )
    else:
        outcome = executor(
            info.user_function,
            instance_id=record.instance_id,
            input_json=record.input,
            parent_instance_id=record.parent_instance_id,
            history=full,
            scheduled_ids=scheduled_ids,
            now=now,
            orchestrator_name=record.name,
        )
    commit = EpisodeCommit(
        instance=record, consumed_message_ids=consumed, history_start=len(history)
    )
    appended = list(episode)
    instance = record.updated(RuntimeStatus.RUNNING, now)
    if outcome.custom_status is not None or record.custom_status is not None:
        instance.custom_status = outcome.custom_status
    unsupported = [
        task for task in outcome.new_tasks if task.kind not in (ACTIVITY, TIMER, SUB_ORCHESTRATION)
    ]
    if unsupported and not outcome.is_done:
        outcome = EpisodeOutcome(
            is_done=True,
            failure=(
                f"Orchestrator function '{record.name}' used an API durablehost does not run "
                f"({unsupported[0].name}): entities and call_http are not supported locally.",
                "",
            ),
        )
    if not outcome.is_done:
        _schedule(record, instance, outcome, appended, commit, now, orchestrators, activities)
    appended.append(HistoryEvent(EventType.ORCHESTRATOR_COMPLETED, now, is_played=True))
    finished = False
    if outcome.is_done and outcome.continued_as_new:
        _continue_as_new(record, instance, outcome, full, commit, now)
        commit.instance = instance
        return EpisodePlan(commit=commit, history=[])
    if outcome.is_done:
        finished = True
        # Nothing of this execution is needed any more: pending timers (a timer cancelled
        # in this very episode included) and activity work go with the same commit.
        commit.drop_pending_work = True
        if outcome.failure is not None:
            instance.status = RuntimeStatus.FAILED
            reason, details = outcome.failure
            instance.output = json.dumps(reason)
            appended.append(
                HistoryEvent(
                    EventType.EXECUTION_COMPLETED,
                    now,
                    result=instance.output,
                    reason=reason,
                    details=details or None,
                    orchestration_status=RuntimeStatus.FAILED.value,
                    is_played=True,
                )
            )
        else:
            instance.status = RuntimeStatus.COMPLETED
            instance.output = outcome.output
            appended.append(
                HistoryEvent(
                    EventType.EXECUTION_COMPLETED,
                    now,
                    result=outcome.output,
                    orchestration_status=RuntimeStatus.COMPLETED.value,
                    is_played=True,
                )
            )
        notice = parent_notification(instance, now)
        if notice is not None:
            commit.messages.append(notice)
    commit.instance = instance
    # Stored as played: every later replay sees them as old events. (What the host
    # writes itself is built played; replace() on every event costs ~10 us each.)
    commit.history = [event.played() for event in appended]
    return EpisodePlan(
        commit=commit,
        history=HistoryView(history, commit.history),
        finished=finished,
        new_scheduled_ids=[e.event_id for e in appended if e.event_type in SCHEDULING_EVENTS],
    )


def _schedule(
    record: InstanceRecord,
    instance: InstanceRecord,
    outcome: EpisodeOutcome,
    appended: list[HistoryEvent],
    commit: EpisodeCommit,
    now: datetime,
    orchestrators: Mapping[str, FunctionInfo],
    activities: Mapping[str, FunctionInfo],
) -> None:
    instance_id = record.instance_id
    execution_id = record.execution_id
    for task in outcome.new_tasks:
        if task.kind == ACTIVITY:
            name = task.name or ""
            appended.append(
                HistoryEvent(
                    EventType.TASK_SCHEDULED,
                    now,
                    event_id=task.task_id,
                    name=name,
                    input=task.input,
                    is_played=True,
                )
            )
            if name in activities:
                commit.activities.append(
                    ActivityWork(instance_id, execution_id, task.task_id, name, task.input)
                )
            else:
                reason = (
                    f"The activity function '{name}' doesn't exist, is disabled, or is not an "
                    f"activity function. Registered activities: "
                    f"{', '.join(sorted(activities)) or 'none'}."
                )
                failed = HistoryEvent(
                    EventType.TASK_FAILED,
                    now,
                    task_scheduled_id=task.task_id,
                    reason=reason,
                    details="",
                )
                commit.messages.append(Message(instance_id, failed, execution_id=execution_id))
        elif task.kind == TIMER:
            fire_at = task.fire_at or now
            appended.append(
                HistoryEvent(
                    EventType.TIMER_CREATED,
                    now,
                    event_id=task.task_id,
                    fire_at=fire_at,
                    is_played=True,
                )
            )
            fired = HistoryEvent(
                EventType.TIMER_FIRED, fire_at, timer_id=task.task_id, fire_at=fire_at
            )
            commit.messages.append(
                Message(instance_id, fired, visible_at=fire_at, execution_id=execution_id)
            )
        elif task.kind == SUB_ORCHESTRATION:
            name = task.name or ""
            child_id = task.instance_id or sub_orchestration_id(instance_id, task.task_id)
            appended.append(
                HistoryEvent(
                    EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
                    now,
                    event_id=task.task_id,
                    name=name,
                    input=task.input,
                    instance_id=child_id,
                    is_played=True,
                )
            )
            if name in orchestrators:
                child = InstanceRecord(
                    instance_id=child_id,
                    execution_id=new_execution_id(),
                    name=orchestrators[name].name,
                    status=RuntimeStatus.PENDING,
                    created_at=now,
                    updated_at=now,
                    input=task.input,
                    parent_instance_id=instance_id,
                    parent_execution_id=execution_id,
                    parent_task_id=task.task_id,
                )
                commit.new_instances.append(child)
                commit.messages.append(
                    Message(
                        child_id, execution_started(child, now), execution_id=child.execution_id
                    )
                )
            else:
                reason = (
                    f"The orchestrator function '{name}' doesn't exist, is disabled, or is not "
                    "an orchestrator function."
                )
                failed = HistoryEvent(
                    EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                    now,
                    task_scheduled_id=task.task_id,
                    reason=reason,
                    details="",
                )
                commit.messages.append(Message(instance_id, failed, execution_id=execution_id))
    commit.canceled_timer_ids = list(outcome.canceled_timer_ids)


def _continue_as_new(
    record: InstanceRecord,
    instance: InstanceRecord,
    outcome: EpisodeOutcome,
    full: Sequence[HistoryEvent],
    commit: EpisodeCommit,
    now: datetime,
) -> None:
    instance.execution_id = new_execution_id()
    instance.input = outcome.continue_as_new_input
    instance.output = None
    instance.status = RuntimeStatus.RUNNING
    commit.replace_history = True
    commit.history = []
    commit.messages.append(
        Message(
            record.instance_id, execution_started(instance, now), execution_id=instance.execution_id
        )
    )
    for event in carried_over_events(full, outcome):
        commit.messages.append(
            Message(record.instance_id, event, execution_id=instance.execution_id)
        )


def carried_over_events(
    history: Sequence[HistoryEvent], outcome: EpisodeOutcome
) -> list[HistoryEvent]:
    """External events the old execution received but did not consume, which carry over
    to the new one: the event the SDK holds buffered for each name (it keeps the latest,
    from any episode of the execution) and every event it never reached."""
    unprocessed = {id(event) for event in outcome.unprocessed_events}
    buffered: dict[str, HistoryEvent] = {}
    for event in history:
        if (
            event.event_type is EventType.EVENT_RAISED
            and event.name in outcome.buffered_event_names
            and id(event) not in unprocessed
        ):
            buffered[event.name or ""] = event
    carried = list(buffered.values())
    carried += [e for e in outcome.unprocessed_events if e.event_type is EventType.EVENT_RAISED]
    return carried


def _terminate(
    record: InstanceRecord,
    history: Sequence[HistoryEvent],
    messages: Sequence[Message],
    terminate: Message,
    now: datetime,
) -> EpisodePlan:
    reason = terminate.event.input
    instance = replace(record, status=RuntimeStatus.TERMINATED, output=reason, updated_at=now)
    appended = [
        HistoryEvent(EventType.ORCHESTRATOR_STARTED, now),
        terminate.event,
        HistoryEvent(EventType.ORCHESTRATOR_COMPLETED, now),
        HistoryEvent(
            EventType.EXECUTION_COMPLETED,
            now,
            result=reason,
            orchestration_status=RuntimeStatus.TERMINATED.value,
        ),
    ]
    commit = EpisodeCommit(
        instance=instance,
        history=appended,
        consumed_message_ids=[m.message_id for m in messages],
        drop_pending_work=True,
    )
    notice = parent_notification(instance, now)
    if notice is not None:
        commit.messages.append(notice)
    return EpisodePlan(commit=commit, history=[*history, *appended], finished=True)


def parent_notification(child: InstanceRecord, now: datetime) -> Message | None:
    """The message telling a sub-orchestration's parent that it finished."""
    if child.parent_instance_id is None or child.parent_task_id is None:
        return None
    if child.status is RuntimeStatus.COMPLETED:
        event = HistoryEvent(
            EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
            now,
            task_scheduled_id=child.parent_task_id,
            result=child.output,
        )
    else:
        detail = _text(child.output)
        event = HistoryEvent(
            EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
            now,
            task_scheduled_id=child.parent_task_id,
            reason=(
                f"Sub-orchestration '{child.instance_id}' {child.status.value.lower()}: {detail}"
            ),
            details="",
        )
    return Message(child.parent_instance_id, event, execution_id=child.parent_execution_id)


def execution_started(instance: InstanceRecord, now: datetime) -> HistoryEvent:
    """The ExecutionStarted event that begins an execution of `instance`."""
    return HistoryEvent(
        EventType.EXECUTION_STARTED,
        now,
        name=instance.name,
        version="",
        input=instance.input,
        parent_instance_id=instance.parent_instance_id,
    )


def new_execution_id() -> str:
    """A fresh execution id (one per start and per continue-as-new)."""
    return uuid.uuid4().hex


def _text(output: str | None) -> Any:
    if output is None:
        return ""
    try:
        return json.loads(output)
    except ValueError:
        return output
