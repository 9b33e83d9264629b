"""The fast paths over history events give exactly what the slow, obvious ones give:
`HistoryEvent.played()` against `dataclasses.replace`, and `sdk_event` against the SDK's
own constructor fed the wire JSON (`encode_event`)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from azure.durable_functions.models.history import HistoryEvent as SdkHistoryEvent

from durablehost.executor import sdk_event
from durablehost.history import EventType, HistoryEvent
from durablehost.wire.orchestration import encode_event

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
