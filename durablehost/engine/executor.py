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

import traceback
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.durable_functions.models.actions.Action import Action
from azure.durable_functions.models.actions.CallActivityAction import CallActivityAction
from azure.durable_functions.models.actions.CallEntityAction import CallEntityAction
from azure.durable_functions.models.actions.CallHttpAction import CallHttpAction
from azure.durable_functions.models.actions.CompoundAction import CompoundAction
from azure.durable_functions.models.actions.NoOpAction import NoOpAction
from azure.durable_functions.models.actions.SignalEntityAction import SignalEntityAction
from azure.durable_functions.models.DurableOrchestrationContext import (
    DurableOrchestrationContext,
)
from azure.durable_functions.models.history.HistoryEvent import HistoryEvent as SdkHistoryEvent
from azure.durable_functions.models.ReplaySchema import ReplaySchema
from azure.durable_functions.models.Task import AtomicTask, RetryAbleTask, TimerTask
from azure.durable_functions.models.TaskOrchestrationExecutor import TaskOrchestrationExecutor
from azure.durable_functions.models.utils.df_serialization import df_dumps

from durablehost.engine.sdk_context import HOST_ONLY_EVENTS, new_sdk_context, sdk_event
from durablehost.model.history import EventType, HistoryEvent
from durablehost.wire.orchestration import (
    OUT_OF_PROC_MARKER,
    ActionRecord,
    ActionType,
    decode_action,
)

# The SDK warns for every event raised before the orchestrator waits for it ("Potential
# duplicate Task completion"): normal buffering here. One narrow filter, set once, rather
# than catch_warnings around every episode (which copies the filter list, resets the
# warning caches, and is not thread-safe) or hiding the user's own warnings.
warnings.filterwarnings("ignore", message="Potential duplicate Task completion")

__all__ = [
    "EpisodeOutcome",
    "NewTask",
    "SessionExecutor",
    "TaskKind",
    "execute_episode",
    "retry_delay",
]

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
    # Events of this episode the SDK never reached because the orchestration ended
    # first (e.g. an event raised right after the one that led to continue_as_new).
    unprocessed_events: tuple[HistoryEvent, ...] = ()


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
    outcome, _ = _replay(
        orchestrator,
        instance_id=instance_id,
        input_json=input_json,
        parent_instance_id=parent_instance_id,
        history=history,
        scheduled_ids=scheduled_ids,
        now=now,
        orchestrator_name=orchestrator_name,
    )
    return outcome


@dataclass(slots=True)
class _Session:
    orchestrator: Callable[..., Any]
    context: DurableOrchestrationContext
    runner: TaskOrchestrationExecutor
    processed: int
    anchor: tuple[EventType, datetime]
    # Open tasks as of the last episode: the SDK's next task id, and the timers (the
    # only old tasks an episode can change: cancel). With them an episode looks at its
    # own new tasks only, not at every open task (O(N) per episode for a fan-out).
    next_task_id: int = 0
    timers: dict[int, TimerTask] = field(default_factory=dict)
    # Actions the SDK recorded that were already checked for unsupported types.
    checked_actions: int = 0


class SessionExecutor:
    """Extended sessions: keep each instance's live orchestrator between episodes.

    The SDK replays the whole history on every episode (O(N^2) for N sequential
    tasks). Here the context, executor and suspended generator of an instance stay in
    memory after an episode, and the next episode only feeds them its new events,
    through the very code path a full replay uses (`process_event`). Without a live
    session (first episode, after a restart, after eviction) it falls back to a full
    replay, with identical results. The engine calls `forget` whenever an instance's
    history is replaced or it finishes.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def forget(self, instance_id: str) -> None:
        """Drop the live session of an instance (its history changed or it ended)."""
        self._sessions.pop(instance_id, None)

    def __call__(
        self,
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
        """Same contract as `execute_episode`."""
        session = self._sessions.pop(instance_id, None)
        if session is not None and self._fits(session, orchestrator, history):
            outcome = _continue(session, history, scheduled_ids, now, orchestrator_name)
        else:
            outcome, session = _replay(
                orchestrator,
                instance_id=instance_id,
                input_json=input_json,
                parent_instance_id=parent_instance_id,
                history=history,
                scheduled_ids=scheduled_ids,
                now=now,
                orchestrator_name=orchestrator_name,
            )
        if not outcome.is_done:
            session.processed = len(history)
            self._sessions[instance_id] = session
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        return outcome

    @staticmethod
    def _fits(
        session: _Session, orchestrator: Callable[..., Any], history: Sequence[HistoryEvent]
    ) -> bool:
        return (
            session.orchestrator is orchestrator
            and 0 < session.processed < len(history)
            and (history[0].event_type, history[0].timestamp) == session.anchor
        )


def _replay(
    orchestrator: Callable[..., Any],
    *,
    instance_id: str,
    input_json: str | None,
    parent_instance_id: str | None,
    history: Sequence[HistoryEvent],
    scheduled_ids: set[int],
    now: datetime,
    orchestrator_name: str,
) -> tuple[EpisodeOutcome, _Session]:
    fn = getattr(orchestrator, "orchestrator_function", None)
    if fn is None:
        raise TypeError(f"{orchestrator!r} is not a Durable Functions orchestrator handle")
    context = new_sdk_context(
        orchestrator,
        instance_id=instance_id,
        input_json=input_json,
        parent_instance_id=parent_instance_id,
        history=history,
    )
    runner = _new_runner()
    processed = _count_processed_events(runner)
    raised: Exception | None = None
    try:
        runner.execute(context, context.histories, fn)
    except Exception as exc:
        raised = exc
    open_tasks = _open_atomic_tasks(context)
    outcome = _outcome(runner, context, raised, scheduled_ids, now, orchestrator_name, open_tasks)
    checked = _fail_unsupported(outcome, context, 0, instance_id)
    if outcome.continued_as_new:
        seen = [e for e in history if e.event_type not in HOST_ONLY_EVENTS]
        outcome.unprocessed_events = tuple(seen[processed[0] :])
    anchor = (history[0].event_type, history[0].timestamp)
    session = _Session(orchestrator, context, runner, len(history), anchor)
    session.next_task_id = context._sequence_number
    session.timers = {t.id: t for t in open_tasks if isinstance(t, TimerTask)}
    session.checked_actions = checked
    return outcome, session


# The SDK's executor builds a namedtuple class and a lookup table in __init__ (~100 us,
# a third of a one-episode orchestration's replay); the table is read-only, so every
# executor shares the one built here and only runs the per-invocation initialize().
_TEMPLATE_RUNNER = TaskOrchestrationExecutor()


def _new_runner() -> TaskOrchestrationExecutor:
    runner = TaskOrchestrationExecutor.__new__(TaskOrchestrationExecutor)
    runner.event_to_SetTaskValuePayload = _TEMPLATE_RUNNER.event_to_SetTaskValuePayload
    runner.task_completion_events = _TEMPLATE_RUNNER.task_completion_events
    runner.initialize()
    return runner


def _continue(
    session: _Session,
    history: Sequence[HistoryEvent],
    scheduled_ids: set[int],
    now: datetime,
    orchestrator_name: str,
) -> EpisodeOutcome:
    runner, context = session.runner, session.context
    runner._is_processing_new_events = True
    raised: Exception | None = None
    new_events = history[session.processed :]
    fed = 0
    try:
        for event in new_events:
            fed += 1
            if event.event_type in HOST_ONLY_EVENTS:
                continue
            sdk = sdk_event(event)
            context._histories.append(sdk)
            runner.process_event(sdk)
            if runner.has_execution_completed:
                break
    except Exception as exc:
        raised = exc
    outcome = _outcome(
        runner, context, raised, scheduled_ids, now, orchestrator_name, _still_open(session)
    )
    session.checked_actions = _fail_unsupported(
        outcome, context, session.checked_actions, context.instance_id
    )
    if outcome.continued_as_new:
        outcome.unprocessed_events = tuple(
            e for e in new_events[fed:] if e.event_type not in HOST_ONLY_EVENTS
        )
    return outcome


def _still_open(session: _Session) -> list[AtomicTask]:
    """The open tasks an episode may have changed: the known timers still open, and
    the tasks created since the last episode (ids are allocated in sequence). Tasks
    are never re-opened, so this equals a scan of every open task for the outcome."""
    open_tasks = session.context.open_tasks
    first, end = session.next_task_id, session.context._sequence_number
    timers = session.timers
    for task_id in [
        task_id for task_id, timer in timers.items() if not _is_open(open_tasks, timer)
    ]:
        del timers[task_id]
    found: list[AtomicTask] = list(timers.values())
    for task_id in range(first, end):
        value = open_tasks.get(task_id)
        for task in value if isinstance(value, list) else [value]:
            if isinstance(task, AtomicTask):
                found.append(task)
                if isinstance(task, TimerTask):
                    timers[task_id] = task
    session.next_task_id = end
    return found


def _is_open(open_tasks: Any, task: AtomicTask) -> bool:
    value = open_tasks.get(task.id)
    return value is task or (isinstance(value, list) and any(item is task for item in value))


def _count_processed_events(runner: TaskOrchestrationExecutor) -> list[int]:
    """Count the events `runner.execute` hands to process_event (it stops early when the
    orchestration ends); returns a one-element list holding the running count."""
    count = [0]
    process_event = runner.process_event

    def counting(event: SdkHistoryEvent) -> None:
        count[0] += 1
        process_event(event)

    runner.process_event = counting
    return count


def _outcome(
    runner: TaskOrchestrationExecutor,
    context: DurableOrchestrationContext,
    raised: Exception | None,
    scheduled_ids: set[int],
    now: datetime,
    orchestrator_name: str,
    open_tasks: list[AtomicTask],
) -> EpisodeOutcome:
    """Read the episode's verdict from the SDK runner, as get_orchestrator_state_str
    does, without serialising every action since the start (O(N) per episode).
    `open_tasks` holds (at least) every open task this episode created or changed."""
    outcome = EpisodeOutcome(is_done=False)
    custom_status = context.custom_status
    if custom_status:  # the SDK leaves a falsy custom status out of its state
        outcome.custom_status = _dumps(custom_status)
    error = runner.exception or _user_error(raised)
    output_json: str | None = None
    if error is None and runner.orchestration_invocation_succeeded and runner.output is not None:
        try:
            output_json = _dumps(runner.output)
        except Exception as exc:  # not JSON-serialisable: the SDK fails the orchestration
            error = exc
    if error is not None:
        outcome.is_done = True
        message = str(error) or str(type(error))
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        outcome.failure = (f"Orchestrator function '{orchestrator_name}' failed: {message}", detail)
        return outcome
    if runner.orchestration_invocation_succeeded:
        outcome.is_done = True
        if context.will_continue_as_new:
            outcome.continued_as_new = True
            outcome.continue_as_new_input = _continue_as_new_input(context)
            outcome.buffered_event_names = frozenset(
                key for key in context.deferred_tasks if isinstance(key, str)
            )
        else:
            outcome.output = output_json
        return outcome
    for task in open_tasks:
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
    outcome.canceled_timer_ids.sort()
    return outcome


def _fail_unsupported(
    outcome: EpisodeOutcome, context: DurableOrchestrationContext, start: int, instance_id: str
) -> int:
    """Fail the episode at the first action this host does not run, among the actions the
    SDK recorded from index `start` on; returns how many are recorded (checked) now.

    A signal_entity is recorded without a task anyone waits on, so the orchestration can
    finish with it: without this check the signal would be dropped in silence. The
    orchestrator's own failure, when it has one, stays the reason.
    """
    actions = _recorded_actions(context)
    if outcome.failure is not None:
        return len(actions)
    for action in actions[start:]:
        message = _unsupported(action, instance_id)
        if message is not None:
            outcome.is_done = True
            outcome.failure = (message, "")
            outcome.new_tasks.clear()
            outcome.output = None
            outcome.continued_as_new = False
            outcome.continue_as_new_input = None
            break
    return len(actions)


def _recorded_actions(context: DurableOrchestrationContext) -> list[Action]:
    if context._replay_schema is ReplaySchema.V1:
        return [action for group in context._action_payload_v1 for action in group]
    return context._action_payload_v2


# Action types this host runs; a compound (when_all / when_any) is checked through its
# children.
_RUN_HERE = frozenset(
    {
        ActionType.CALL_ACTIVITY,
        ActionType.CALL_ACTIVITY_WITH_RETRY,
        ActionType.CALL_SUB_ORCHESTRATOR,
        ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY,
        ActionType.CONTINUE_AS_NEW,
        ActionType.CREATE_TIMER,
        ActionType.WAIT_FOR_EXTERNAL_EVENT,
    }
)
_COMPOUND = frozenset({ActionType.WHEN_ALL, ActionType.WHEN_ANY})


def _unsupported(action: Action, instance_id: str) -> str | None:
    """A message naming what `action` asked for when this host does not run it."""
    if isinstance(action, NoOpAction):
        return None
    kind = action.action_type
    if kind in _RUN_HERE:
        return None
    if kind in _COMPOUND and isinstance(action, CompoundAction):
        for child in action.compound_tasks:
            message = _unsupported(child, instance_id)
            if message is not None:
                return message
        return None
    where = f"in orchestration {instance_id!r}"
    if isinstance(action, SignalEntityAction | CallEntityAction):
        api = "signal_entity" if isinstance(action, SignalEntityAction) else "call_entity"
        return (
            f"durablehost does not run durable entities yet: "
            f"{api}({action.instance_id!r}, {action.operation!r}) {where}. "
            "Run this orchestration on Azure or the Functions host (func start)."
        )
    if isinstance(action, CallHttpAction):
        request = action.http_request
        return (
            f"durablehost does not run durable HTTP calls yet: "
            f"call_http({request.method!r}, {request.uri!r}) {where}. Call the URL from "
            "an activity instead, or run on Azure or the Functions host (func start)."
        )
    return (
        f"durablehost does not run orchestrator action type {kind} "
        f"({type(action).__name__}) {where}; it fails the instance rather than skip it."
    )


def _user_error(raised: Exception | None) -> Exception | None:
    # get_orchestrator_state_str re-raises the user's exception wrapped with the state
    # JSON, and runner.exception already holds it. Anything else is an SDK-level
    # failure (e.g. a history it cannot replay) and fails the instance with its message.
    if raised is None:
        return None
    cause = raised.__cause__
    if OUT_OF_PROC_MARKER in str(raised) and isinstance(cause, Exception):
        return cause
    return raised


def _continue_as_new_input(context: DurableOrchestrationContext) -> str | None:
    for action in reversed(context._action_payload_v2):
        data = action.to_json()
        if data.get("actionType") == ActionType.CONTINUE_AS_NEW:
            return decode_action(data).input
    return None


def _open_atomic_tasks(context: DurableOrchestrationContext) -> list[AtomicTask]:
    tasks: list[AtomicTask] = []
    for value in context.open_tasks.values():
        for task in value if isinstance(value, list) else [value]:
            if isinstance(task, AtomicTask):
                tasks.append(task)
    return tasks


def _new_task(task: AtomicTask, now: datetime) -> NewTask | None:
    action = task.action_repr
    if type(action) is CallActivityAction:
        # The usual task, read straight off the action: its to_json() dict and
        # decode_action give the same (tests compare both ways) at ~5x the cost.
        return NewTask(task.id, ACTIVITY, name=action.function_name, input=action.input_)
    parent = task.parent
    if isinstance(action, NoOpAction):
        # A NoOp task: a -WithRetry timer or a re-attempt the SDK created while
        # replaying a failure. Its retry proxy holds the original action.
        if not isinstance(parent, RetryAbleTask):
            return None
        original = decode_action(parent.actions.to_json())
        metadata = getattr(action, "metadata", "") or ""
        if "timer" in metadata:
            delay = retry_delay(original.retry_options or {}, parent.num_attempts)
            return NewTask(task.id, TIMER, fire_at=now + delay, is_retry_timer=True)
        return _task_for_action(task.id, original)
    return _task_for_action(task.id, decode_action(action.to_json()))


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


def _dumps(value: Any) -> str:
    # The SDK's own serialiser, so custom objects (to_json/from_json) round-trip as on Azure.
    return str(df_dumps(value))
