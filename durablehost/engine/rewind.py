"""Rewind: turn a Failed instance back into a Running one that retries what failed.

Like the extension's rewind, the failure records are removed from the history and
the failed work is scheduled again: failed activities re-run, failed sub-orchestrations
are rewound too (recursively). Successful results stay, so nothing that worked runs
again. A Generic event wakes the orchestrator so that a failure of the orchestrator
code itself (no failed task) is replayed as well.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import RuntimeStatus
from durablehost.store.base import (
    ActivityWork,
    EpisodeCommit,
    InstanceRecord,
    Message,
    TaskHubStore,
)

__all__ = ["plan_rewind"]


def plan_rewind(
    store: TaskHubStore, record: InstanceRecord, reason: str | None, now: datetime
) -> list[EpisodeCommit]:
    """The commits that rewind `record` and its failed sub-orchestrations."""
    history = store.get_history(record.instance_id)
    scheduled = {
        event.event_id: event
        for event in history
        if event.event_type
        in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_INSTANCE_CREATED)
    }
    kept: list[HistoryEvent] = []
    commit = EpisodeCommit(
        instance=replace(record, status=RuntimeStatus.RUNNING, output=None, updated_at=now),
        replace_history=True,
    )
    commits = [commit]
    for event in history:
        if event.event_type is EventType.EXECUTION_COMPLETED:
            continue
        if event.event_type is EventType.TASK_FAILED and event.task_scheduled_id in scheduled:
            origin = scheduled[event.task_scheduled_id]
            commit.activities.append(
                ActivityWork(
                    record.instance_id,
                    record.execution_id,
                    event.task_scheduled_id,
                    origin.name or "",
                    origin.input,
                )
            )
            continue
        if (
            event.event_type is EventType.SUB_ORCHESTRATION_INSTANCE_FAILED
            and event.task_scheduled_id in scheduled
        ):
            child_id = scheduled[event.task_scheduled_id].instance_id
            child = store.get_instance(child_id) if child_id else None
            if child is not None and child.status is RuntimeStatus.FAILED:
                commits += plan_rewind(store, child, reason, now)
                continue
        kept.append(event)
    commit.history = kept
    wake = HistoryEvent(EventType.GENERIC_EVENT, now, name="rewind", input=reason)
    commit.messages.append(Message(record.instance_id, wake, execution_id=record.execution_id))
    return commits
