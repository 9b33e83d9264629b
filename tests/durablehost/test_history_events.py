"""The fast paths over history events give exactly what the slow, obvious ones give:
`HistoryEvent.played()` against `dataclasses.replace`, `sdk_event` and
`new_sdk_context` against the SDK's own constructors fed the wire JSON, and an activity
task read off its action against the action's JSON."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from azure.durable_functions.models.actions.CallActivityAction import CallActivityAction
from azure.durable_functions.models.DurableOrchestrationContext import (
    DurableOrchestrationContext,
)
from azure.durable_functions.models.history import HistoryEvent as SdkHistoryEvent
from azure.durable_functions.models.Task import AtomicTask

from durablehost.engine.executor import _new_task, _task_for_action
from durablehost.engine.sdk_context import new_sdk_context, sdk_event
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import RuntimeStatus
from durablehost.store.base import InstanceRecord
from durablehost.wire.orchestration import decode_action, encode_context, encode_event

AT = datetime(2026, 11, 23, 14, 5, 6, 789012, tzinfo=UTC)


def _every_field_set(event_type: EventType) -> HistoryEvent:
    return HistoryEvent(
        event_type,
        AT,
        event_id=7,
        name="name",
        version="1.0",
        input='{"in": 1}',
        result='"out"',
        reason="reason",
        details="details",
        task_scheduled_id=3,
        timer_id=4,
        fire_at=AT + timedelta(minutes=5),
        instance_id="child",
        parent_instance_id="parent",
        orchestration_status="Completed",
    )


def test_played_is_replace_with_is_played() -> None:
    event = _every_field_set(EventType.TASK_COMPLETED)
    assert event.played() == dataclasses.replace(event, is_played=True)
    # Every field is compared above only if each one differs from its default.
    defaults = HistoryEvent(EventType.TASK_COMPLETED, AT)
    for field in dataclasses.fields(HistoryEvent):
        if field.name not in ("event_type", "timestamp", "is_played"):
            assert getattr(event, field.name) != getattr(defaults, field.name), field.name


def test_instance_updated_is_replace_of_status_and_time() -> None:
    record = InstanceRecord(
        "id", "exec", "orch", RuntimeStatus.PENDING, AT, AT, '"in"', '"out"', '"cs"', "p", "pe", 9
    )
    later = AT + timedelta(seconds=3)
    assert record.updated(RuntimeStatus.RUNNING, later) == dataclasses.replace(
        record, status=RuntimeStatus.RUNNING, updated_at=later
    )
    defaults = InstanceRecord("i", "e", "n", RuntimeStatus.PENDING, AT, AT)
    for field in dataclasses.fields(InstanceRecord):
        if field.name not in ("status", "created_at", "updated_at"):
            assert getattr(record, field.name) != getattr(defaults, field.name), field.name


def test_played_of_a_played_event_is_the_event_itself() -> None:
    event = _every_field_set(EventType.TIMER_FIRED).played()
    assert event.played() is event


def _attributes(sdk: SdkHistoryEvent) -> dict[str, object]:
    return dict(vars(sdk))


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.title)
@pytest.mark.parametrize("full", [True, False], ids=["every field", "bare"])
def test_sdk_event_matches_the_sdk_constructor(event_type: EventType, full: bool) -> None:
    event = _every_field_set(event_type) if full else HistoryEvent(event_type, AT, event_id=2)
    ours = _attributes(sdk_event(event))
    theirs = _attributes(SdkHistoryEvent(**encode_event(event)))
    # The SDK parses the Timestamp text into another tzinfo object: the same instant.
    assert ours.pop("_timestamp") == theirs.pop("_timestamp") == AT
    assert ours == theirs


def _history() -> list[HistoryEvent]:
    return [
        HistoryEvent(EventType.ORCHESTRATOR_STARTED, AT, is_played=True),
        HistoryEvent(
            EventType.EXECUTION_STARTED,
            AT,
            name="orch",
            version="2.0",
            input='{"n": 1}',
            parent_instance_id="parent",
            is_played=True,
        ),
        HistoryEvent(EventType.TASK_SCHEDULED, AT, event_id=0, name="act", is_played=True),
        HistoryEvent(EventType.ORCHESTRATOR_COMPLETED, AT, is_played=True),
        HistoryEvent(EventType.ORCHESTRATOR_STARTED, AT + timedelta(seconds=1)),
        HistoryEvent(EventType.TASK_COMPLETED, AT, task_scheduled_id=0, result='"done"'),
    ]


def _comparable(context: DurableOrchestrationContext) -> dict[str, object]:
    values = dict(vars(context))
    values["_histories"] = [
        {k: v for k, v in vars(e).items() if k != "_timestamp"} for e in values["_histories"]
    ]
    started = values.pop("decision_started_event")
    values["decision_started_event"] = values["_histories"][context.histories.index(started)]
    values["_current_utc_datetime"] = values["_current_utc_datetime"].timestamp()
    values["_function_context"] = vars(values["_function_context"])
    values["open_tasks"] = (values["open_tasks"].default_factory, dict(values["open_tasks"]))
    return values


@pytest.mark.parametrize("parent", ["parent", None])
def test_new_sdk_context_matches_the_sdk_constructor(parent: str | None) -> None:
    history = _history()
    ours = new_sdk_context(
        lambda context: None,
        instance_id="abc",
        input_json='{"n": 1}',
        parent_instance_id=parent,
        history=history,
    )
    context_json = encode_context(
        instance_id="abc",
        history=history,
        input_json='{"n": 1}',
        parent_instance_id=parent,
        is_replaying=False,
    )
    theirs = DurableOrchestrationContext(**context_json)
    theirs._input_expected_type = None  # set by the SDK's handle, as by new_sdk_context
    assert _comparable(ours) == _comparable(theirs)
    assert ours.current_utc_datetime == AT  # the first OrchestratorStarted, as the SDK
    assert ours.version == "2.0"


def test_new_sdk_contexts_share_no_state() -> None:
    made = [
        new_sdk_context(
            lambda context: None,
            instance_id=f"i{n}",
            input_json=None,
            parent_instance_id=None,
            history=_history(),
        )
        for n in range(2)
    ]
    first, second = made
    first.call_activity("act", 1)
    first.set_custom_status("busy")
    assert second.open_tasks == {} and second._action_payload_v2 == []
    assert second.custom_status is None and second._sequence_number == 0
    for name, value in vars(first).items():
        if isinstance(value, list | dict | set):
            assert value is not getattr(second, name), name


@pytest.mark.parametrize("value", [None, "Tokyo", {"city": "Lima", "n": [1, 2]}, 0, ""])
def test_a_call_activity_task_read_directly_equals_the_to_json_path(value: object) -> None:
    task = AtomicTask(4, CallActivityAction("say_hello", value))
    direct = _new_task(task, AT)
    general = _task_for_action(4, decode_action(task.action_repr.to_json()))
    assert direct == general
    assert direct is not None and direct.name == "say_hello"
