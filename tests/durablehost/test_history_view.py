"""HistoryView reads like the list it stands for, for every index and slice."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

from durablehost.engine.episodes import HistoryView
from durablehost.model.history import EventType, HistoryEvent

MOMENT = datetime(2026, 12, 2, tzinfo=UTC)


def _events(count: int, first_id: int = 0) -> list[HistoryEvent]:
    return [
        HistoryEvent(EventType.TASK_SCHEDULED, MOMENT, event_id=first_id + n, name="a")
        for n in range(count)
    ]


def test_every_slice_and_index_matches_the_concatenated_list() -> None:
    for head_length, tail_length in [(0, 0), (0, 3), (4, 0), (5, 3), (1, 1)]:
        head = _events(head_length)
        tail = _events(tail_length, first_id=100)
        view = HistoryView(head, tail)
        whole = [*head, *tail]
        assert len(view) == len(whole)
        assert list(view) == whole
        bounds = [None, *range(-len(whole) - 2, len(whole) + 3)]
        for start, stop, step in itertools.product(bounds, bounds, [None, 1, 2, -1]):
            assert view[start:stop:step] == whole[start:stop:step], (start, stop, step)
        for index in range(-len(whole), len(whole)):
            assert view[index] is whole[index]


def test_a_slice_that_starts_in_the_stored_part_copies_only_what_it_asks() -> None:
    class CountingHead(list[HistoryEvent]):
        copied = 0

        def __iter__(self) -> Iterator[HistoryEvent]:
            CountingHead.copied += len(self)
            return super().__iter__()

    head = CountingHead(_events(10_000))
    view = HistoryView(head, _events(2, first_id=20_000))
    assert len(view[9_998:]) == 4
    assert CountingHead.copied == 0  # slicing a list never iterates the whole of it
