"""Messages held until they are due: durable timers (`TimerFired` with a `visible_at`).

A heap by due time. The engine routes a message here when it is not yet visible, asks
for the due ones when its timer loop wakes, and drops the timers an episode cancelled.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime

from durablehost.model.history import EventType
from durablehost.store.base import Message

__all__ = ["DueMessages"]


@dataclass(order=True, slots=True)
class _Due:
    due: datetime
    message_id: int
    message: Message = field(compare=False)


class DueMessages:
    """Messages waiting for their `visible_at`, earliest first."""

    def __init__(self) -> None:
        self._heap: list[_Due] = []

    def __len__(self) -> int:
        return len(self._heap)

    def hold(self, message: Message) -> None:
        """Keep `message` (its `visible_at` set) until it is due."""
        assert message.visible_at is not None
        heapq.heappush(self._heap, _Due(message.visible_at, message.message_id, message))

    def pop_due(self, now: datetime) -> list[Message]:
        """The messages due by `now`, earliest first, made visible (visible_at None)."""
        due: list[Message] = []
        while self._heap and self._heap[0].due <= now:
            message = heapq.heappop(self._heap).message
            message.visible_at = None
            due.append(message)
        return due

    def seconds_until_next(self, now: datetime) -> float | None:
        """How long until the next message is due; None when none is held."""
        return (self._heap[0].due - now).total_seconds() if self._heap else None

    def forget_timers(self, instance_id: str, timer_ids: set[int]) -> None:
        """Drop the TimerFired messages of `instance_id` for these timer ids (cancelled)."""
        kept = [
            held
            for held in self._heap
            if not (
                held.message.instance_id == instance_id
                and held.message.event.timer_id in timer_ids
                and held.message.event.event_type is EventType.TIMER_FIRED
            )
        ]
        if len(kept) != len(self._heap):
            heapq.heapify(kept)
            self._heap = kept
