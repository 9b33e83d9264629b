"""DueMessages: held timer messages come out in due order, made visible, and cancelled
timers are dropped for their own instance only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from durablehost.engine.due_messages import DueMessages
from durablehost.model.history import EventType, HistoryEvent
from durablehost.store.base import Message

T0 = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


def _timer(instance_id: str, timer_id: int, seconds: float, message_id: int) -> Message:
    due = T0 + timedelta(seconds=seconds)
    event = HistoryEvent(EventType.TIMER_FIRED, T0, timer_id=timer_id, fire_at=due)
    return Message(instance_id, event, visible_at=due, message_id=message_id)


def test_due_messages_come_out_earliest_first_and_visible() -> None:
    held = DueMessages()
    late, early, middle = _timer("a", 1, 30, 1), _timer("b", 1, 10, 2), _timer("a", 2, 20, 3)
    for message in (late, early, middle):
        held.hold(message)
    assert held.seconds_until_next(T0) == 10
    assert held.pop_due(T0 + timedelta(seconds=5)) == []
    assert held.pop_due(T0 + timedelta(seconds=20)) == [early, middle]
    assert early.visible_at is None and middle.visible_at is None
    assert late.visible_at is not None and len(held) == 1
    assert held.seconds_until_next(T0 + timedelta(seconds=20)) == 10


def test_forgetting_timers_drops_only_that_instances_timers() -> None:
    held = DueMessages()
    mine, other_timer, theirs = _timer("a", 1, 10, 1), _timer("a", 2, 10, 2), _timer("b", 1, 5, 3)
    for message in (mine, other_timer, theirs):
        held.hold(message)
    held.forget_timers("a", {1})
    assert held.pop_due(T0 + timedelta(minutes=1)) == [theirs, other_timer]
    assert held.seconds_until_next(T0) is None
