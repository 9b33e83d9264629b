"""Run one orchestration episode through the real SDK and say what it asked for.

`execute_episode` is the replay step: history in, decisions out, no I/O, no clock. The
SDK numbers every task it creates (activities, timers, sub-orchestrations, and the
retry timers and re-attempts of -WithRetry calls, which it allocates while replaying
failures); the host must put those same numbers on the events it writes back. So
instead of re-deriving the numbering, the executor reads each new task's id from the
SDK's own task objects after the run, and decodes what to do from the task's action
JSON. The engine turns the result into history events and work items.
"""

from __future__ import annotations

import json
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.durable_functions.models.actions.NoOpAction import NoOpAction
from azure.durable_functions.models.DurableOrchestrationContext import (
    DurableOrchestrationContext,
)
from azure.durable_functions.models.Task import AtomicTask, RetryAbleTask, TaskBase, TimerTask
from azure.durable_functions.models.TaskOrchestrationExecutor import TaskOrchestrationExecutor

from durablehost.history import EventType, HistoryEvent
from durablehost.wire.orchestration import (
    ActionRecord,
    ActionType,
    OrchestratorState,
    decode_action,
    decode_state,
    encode_context,
    state_from_exception_message,
)

__all__ = ["EpisodeOutcome", "NewTask", "TaskKind", "execute_episode", "retry_delay"]

# Task kinds the host schedules for an orchestrator.
TaskKind = str
ACTIVITY: TaskKind = "activity"
SUB_ORCHESTRATION: TaskKind = "sub_orchestration"
TIMER: TaskKind = "timer"


@dataclass(frozen=True, slots=True)
class NewTask:
    """Work the orchestrator asked for in this episode, under the SDK's task id.

    Retry timers carry the delay computed from the retry policy (`fire_at`); retried
    attempts are ACTIVITY / SUB_ORCHESTRATION tasks like first attempts.
    """

    task_id: int
    kind: TaskKind
    name: str | None = None
    input: str | None = None
    fire_at: datetime | None = None
    instance_id: str | None = None
    version: str | None = None
    is_retry_timer: bool = False


@dataclass(slots=True)
class EpisodeOutcome:
    """What one episode decided."""

    is_done: bool
    new_tasks: list[NewTask] = field(default_factory=list)
    canceled_timer_ids: list[int] = field(default_factory=list)
    output: str | None = None
    failure: tuple[str, str] | None = None
    custom_status: str | None = None
    continue_as_new_input: str | None = None
    continued_as_new: bool = False
    buffered_event_names: frozenset[str] = frozenset()


OrchestratorFunction = Callable[[DurableOrchestrationContext], Any]


def execute_episode(
    orchestrator: Callable[..., Any],
    *,
    instance_id: str,
    input_json: str | None,
    parent_instance_id: str | None,
    history: Sequence[HistoryEvent],
    scheduled_ids: set[int],
    now: datetime,
    orchestrator_name: str,
) -> EpisodeOutcome:
    """Replay `history` (which ends with this episode's new events) through the SDK.

    `orchestrator` is the SDK handle from `get_user_function()`; `scheduled_ids` holds
    the ids of tasks already scheduled (so only new ones are returned); `now` is only
    used to compute retry-timer due times.
    """
    fn = getattr(orchestrator, "orchestrator_function", None)
    if fn is None:
        raise TypeError(f"{orchestrator!r} is not a Durable Functions orchestrator handle")
    sdk_history = [event for event in history if event.event_type not in _HOST_ONLY_EVENTS]
    context_json = encode_context(
        instance_id=instance_id,
        history=sdk_history,
        input_json=input_json,
        parent_instance_id=parent_instance_id,
        is_replaying=False,
    )
    context = DurableOrchestrationContext(**context_json)
    context._input_expected_type = getattr(orchestrator, "_df_input_type", None)
    runner = TaskOrchestrationExecutor()
    state: OrchestratorState
    with warnings.catch_warnings():
        # The SDK warns for every event raised before the orchestrator waits for it
        # ("Potential duplicate Task completion"): that is normal buffering here.
        warnings.simplefilter("ignore")
        try:
            state = decode_state(runner.execute(context, context.histories, fn))
        except Exception as exc:
            embedded = state_from_exception_message(str(exc))
            detail = "".join(traceback.format_exception(exc.__cause__ or exc))
            message = embedded.error if embedded and embedded.error else str(exc)
            outcome = EpisodeOutcome(is_done=True)
            outcome.failure = (
                f"Orchestrator function '{orchestrator_name}' failed: {message}",
                detail,
            )
            if embedded is not None:
                outcome.custom_status = _dump(embedded.custom_status)
            return outcome
    return _outcome(state, context, scheduled_ids, now, orchestrator_name)


# Suspend/resume are the host's business; the SDK does not expect them in its history.
_HOST_ONLY_EVENTS = frozenset({EventType.EXECUTION_SUSPENDED, EventType.EXECUTION_RESUMED})


def _outcome(
    state: OrchestratorState,
    context: DurableOrchestrationContext,
    scheduled_ids: set[int],
    now: datetime,
    orchestrator_name: str,
) -> EpisodeOutcome:
    outcome = EpisodeOutcome(is_done=False, custom_status=_dump(state.custom_status))
    if state.error is not None:
        # Output that is not JSON-serialisable: the SDK reports isDone with an error.
        outcome.is_done = True
        outcome.failure = (f"Orchestrator function '{orchestrator_name}' failed: {state.error}", "")
        return outcome
    if state.is_done:
        outcome.is_done = True
        continue_as_new = [a for a in state.actions if a.action_type == ActionType.CONTINUE_AS_NEW]
        if context.will_continue_as_new and continue_as_new:
            outcome.continued_as_new = True
            outcome.continue_as_new_input = continue_as_new[-1].input
            outcome.buffered_event_names = frozenset(
                key for key in context.deferred_tasks if isinstance(key, str)
            )
        else:
            outcome.output = _dump(state.output)
        return outcome
    for task in _open_atomic_tasks(context):
        if not isinstance(task.id, int):
            continue  # external-event waits are keyed by name and need no scheduling
        if task.id in scheduled_ids:
            if isinstance(task, TimerTask) and task.is_cancelled:
                outcome.canceled_timer_ids.append(task.id)
            continue
        new_task = _new_task(task, now)
        if new_task is not None:
            outcome.new_tasks.append(new_task)
    outcome.new_tasks.sort(key=lambda item: item.task_id)
    return outcome


def _open_atomic_tasks(context: DurableOrchestrationContext) -> list[AtomicTask]:
    tasks: list[AtomicTask] = []
    for value in context.open_tasks.values():
        for task in value if isinstance(value, list) else [value]:
            if isinstance(task, AtomicTask):
                tasks.append(task)
    return tasks


def _new_task(task: AtomicTask, now: datetime) -> NewTask | None:
    parent = task.parent
    if isinstance(task.action_repr, NoOpAction):
        # A NoOp task: a -WithRetry timer or a re-attempt the SDK created while
        # replaying a failure. Its retry proxy holds the original action.
        if not isinstance(parent, RetryAbleTask):
            return None
        original = decode_action(parent.actions.to_json())
        metadata = getattr(task.action_repr, "metadata", "") or ""
        if "timer" in metadata:
            delay = retry_delay(original.retry_options or {}, parent.num_attempts)
            return NewTask(task.id, TIMER, fire_at=now + delay, is_retry_timer=True)
        return _task_for_action(task.id, original)
    return _task_for_action(task.id, decode_action(task.action_repr.to_json()))


def _task_for_action(task_id: int, action: ActionRecord) -> NewTask | None:
    kind = action.action_type
    if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
        return NewTask(task_id, ACTIVITY, name=action.function_name, input=action.input)
    if kind in (ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
        return NewTask(
            task_id,
            SUB_ORCHESTRATION,
            name=action.function_name,
            input=action.input,
            instance_id=action.instance_id,
            version=action.version,
        )
    if kind == ActionType.CREATE_TIMER:
        return NewTask(task_id, TIMER, fire_at=action.fire_at)
    # Entities and call_http are not supported by this host (documented); the task stays
    # open and the engine reports it.
    return NewTask(task_id, "unsupported", name=f"action type {kind}")


def retry_delay(retry_options: dict[str, Any], attempts_made: int) -> timedelta:
    """Delay before the next attempt, as DurableTask's RetryOptions computes it:
    first interval x backoff^(attempt-1), capped by the max interval."""
    first = float(retry_options.get("firstRetryIntervalInMilliseconds", 1000))
    backoff = float(retry_options.get("backoffCoefficient", 1.0) or 1.0)
    cap = retry_options.get("maxRetryIntervalInMilliseconds")
    millis = first * backoff ** max(attempts_made - 1, 0)
    if cap:
        millis = min(millis, float(cap))
    return timedelta(milliseconds=millis)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def describe_task(task: TaskBase) -> str:
    """A short description of an SDK task, for logs."""
    return f"{type(task).__name__}(id={getattr(task, 'id', None)})"
