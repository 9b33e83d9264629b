"""What is specific to the SQLite task hub (the behaviour every store shares is in
test_store_contract.py): the schema version, WAL, refusing a newer schema, and the
`open_store` factory's locations.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from durablehost.errors import ConfigError
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import RuntimeStatus
from durablehost.store import (
    InstanceRecord,
    Message,
    SqliteTaskHubStore,
    TaskHubStore,
    open_store,
)
from durablehost.store.migrations import MIGRATIONS
from durablehost.store.rows import event_from_json, event_to_json

T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def create(store: TaskHubStore, instance_id: str) -> None:
    record = InstanceRecord(instance_id, "exec", "orchestrator", RuntimeStatus.PENDING, T0, T0)
    started = HistoryEvent(EventType.EXECUTION_STARTED, T0, name="orchestrator")
    store.create_instance(record, Message(instance_id, started, execution_id="exec"))


def test_sqlite_records_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    SqliteTaskHubStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Opening again does not run the migrations twice.
    store = SqliteTaskHubStore(path)
    create(store, "x")
    store.close()
    assert SqliteTaskHubStore(path).get_instance("x") is not None


def test_sqlite_refuses_a_hub_from_a_newer_durablehost(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this durablehost knows"):
        SqliteTaskHubStore(path)


def test_open_store_accepts_paths_and_sqlite_urls(tmp_path: Path) -> None:
    by_path = open_store(tmp_path / "a" / "hub.sqlite3")
    create(by_path, "p")
    by_path.close()
    by_url = open_store(f"sqlite:///{tmp_path / 'a' / 'hub.sqlite3'}")
    assert by_url.get_instance("p") is not None
    by_url.close()


def test_open_store_rejects_unknown_urls() -> None:
    with pytest.raises(ConfigError, match="sqlite:///"):
        open_store("postgres://localhost/hub")


def test_events_written_by_earlier_versions_still_read() -> None:
    """Hubs written before the orjson encoding hold timestamps as format_timestamp text
    (always six fraction digits); they read back as the same events."""
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    older = (
        '{"t":11,"at":"2026-03-04T05:06:07.000000Z","id":3,"p":1,"ti":2,'
        '"f":"2026-03-04T05:06:07.250000Z"}'
    )
    assert event_from_json(older) == HistoryEvent(
        EventType.TIMER_FIRED,
        at,
        event_id=3,
        is_played=True,
        timer_id=2,
        fire_at=at.replace(microsecond=250000),
    )


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, 1, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7),  # naive: taken as UTC, as format_timestamp does
    ],
)
def test_event_timestamps_round_trip_exactly(moment: datetime) -> None:
    event = HistoryEvent(EventType.TIMER_CREATED, moment, event_id=0, fire_at=moment)
    decoded = event_from_json(event_to_json(event))
    expected = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    assert decoded.timestamp == expected and decoded.fire_at == expected
    assert decoded.timestamp.utcoffset() is not None
