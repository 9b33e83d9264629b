"""Fill a task hub with finished instances (the memory workload).

Each instance is a Completed HelloSequence5 with its full history (22 events), as the
host would have stored it. The store creates the schema; the rows are then written with
plain SQL in large transactions (through commit_episodes 100,000 instances take about a
minute, most of it encoding the same events again).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import RuntimeStatus
from durablehost.store import SqliteTaskHubStore
from durablehost.store.rows import event_to_json
from durablehost.wire.orchestration import format_timestamp

__all__ = ["seed_finished_instances"]

_BATCH = 10_000
_CITIES = ("Tokyo", "Seattle", "London", "Paris", "Lima")


def _history(moment: datetime) -> list[HistoryEvent]:
    events = [
        HistoryEvent(EventType.ORCHESTRATOR_STARTED, moment, is_played=True),
        HistoryEvent(
            EventType.EXECUTION_STARTED, moment, is_played=True, name="hello_sequence5", version=""
        ),
    ]
    for task_id, city in enumerate(_CITIES):
        events += [
            HistoryEvent(
                EventType.TASK_SCHEDULED,
                moment,
                event_id=task_id,
                is_played=True,
                name="say_hello",
                input=json.dumps(city),
            ),
            HistoryEvent(EventType.ORCHESTRATOR_COMPLETED, moment, is_played=True),
            HistoryEvent(EventType.ORCHESTRATOR_STARTED, moment, is_played=True),
            HistoryEvent(
                EventType.TASK_COMPLETED,
                moment,
                is_played=True,
                task_scheduled_id=task_id,
                result=json.dumps(f"Hello {city}!"),
            ),
        ]
    output = json.dumps([f"Hello {city}!" for city in _CITIES])
    events += [
        HistoryEvent(EventType.ORCHESTRATOR_COMPLETED, moment, is_played=True),
        HistoryEvent(
            EventType.EXECUTION_COMPLETED,
            moment,
            is_played=True,
            result=output,
            orchestration_status=RuntimeStatus.COMPLETED.value,
        ),
    ]
    return events


def seed_finished_instances(hub: Path, count: int) -> str:
    """Write `count` Completed instances into the hub file; returns one instance id."""
    SqliteTaskHubStore(hub).close()  # creates the schema
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = [event_to_json(event) for event in _history(start)]
    output = json.dumps([f"Hello {city}!" for city in _CITIES])
    db = sqlite3.connect(hub, isolation_level=None)
    try:
        for first in range(0, count, _BATCH):
            numbers = range(first, min(first + _BATCH, count))
            instances = []
            for number in numbers:
                moment = format_timestamp(start + timedelta(milliseconds=number))
                ids = (f"seeded-{number:07d}", f"exec-{number:07d}")
                instances.append(
                    (*ids, "hello_sequence5", "Completed", moment, moment, None, output)
                )
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO instances (instance_id, execution_id, name, status, created_at, "
                "updated_at, input, output) VALUES (?,?,?,?,?,?,?,?)",
                instances,
            )
            db.executemany(
                "INSERT INTO history (instance_id, seq, event) VALUES (?,?,?)",
                [(row[0], seq, text) for row in instances for seq, text in enumerate(events)],
            )
            db.execute("COMMIT")
    finally:
        db.close()
    return f"seeded-{count // 2:07d}"
