"""format_timestamp (isoformat plus a cache) writes exactly what strftime would, for any
instant, naive or in any zone, however the calls interleave."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from durablehost.wire.orchestration import format_timestamp, parse_timestamp


def _reference(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_format_matches_strftime_for_random_instants_in_any_order() -> None:
    chooser = random.Random(5)
    zones = [UTC, None, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    moments = []
    for _ in range(20_000):
        base = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
            seconds=chooser.randrange(0, 40 * 365 * 86400),
            microseconds=chooser.choice([0, chooser.randrange(1_000_000)]),
        )
        zone = chooser.choice(zones)
        moments.append(base.replace(tzinfo=None) if zone is None else base.astimezone(zone))
    # Each instant several times, interleaved, so cached and fresh answers both count.
    for moment in moments + chooser.sample(moments, len(moments)):
        assert format_timestamp(moment) == _reference(moment)


def test_equal_instants_in_other_zones_format_alike_and_round_trip() -> None:
    utc = datetime(2026, 11, 23, 14, 0, 0, 120, tzinfo=UTC)
    shifted = utc.astimezone(timezone(timedelta(hours=-3)))
    assert format_timestamp(utc) == format_timestamp(shifted) == "2026-11-23T14:00:00.000120Z"
    assert parse_timestamp(format_timestamp(shifted)) == utc


def test_years_before_1000_keep_strftime_text() -> None:
    early = datetime(999, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert format_timestamp(early) == early.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
