"""Read-only queries over the SQLite task hub for the dashboard: counts per status,
listings filtered by orchestrator name, an instance's parent.

The management API's listing has no name filter and no counts; the dashboard asks these
here instead. They run on a connection of their own, never the store's: WAL lets a reader
work beside the writer, so a dashboard polling every few seconds does not queue behind
the engine's commits on the store's lock (nor they behind it).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from durablehost.model.instances import InstancePage, InstanceQuery, RuntimeStatus
from durablehost.store.listing import (
    INSTANCE_COLUMNS,
    instance_filters,
    instance_page,
    listing_sql,
)

__all__ = ["HubOverview"]

# What a listing selects when the caller asked for no input (showInput=false).
_COLUMNS_WITHOUT_INPUT = INSTANCE_COLUMNS.replace(" input,", " NULL,")


class HubOverview:
    """Dashboard queries on one SQLite hub file; safe to call from any thread."""

    def __init__(self, location: str | Path) -> None:
        """Open a read-only view of the hub at `location` (a path or sqlite:///path),
        which the host has already created."""
        path = str(location).removeprefix("sqlite:///")
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Never writes, whatever a bug might try: the engine owns every write.
        self._db.execute("PRAGMA query_only=ON")
        # A RESTART checkpoint may hold the file briefly; wait instead of failing.
        self._db.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, params: list[Any]) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def status_counts(self, query: InstanceQuery, name: str | None = None) -> dict[str, int]:
        """How many instances match the query's filters (its statuses ignored), per
        runtime status; every status is present. Without filters this walks only the
        (status, created_at) index."""
        where, params = instance_filters(query, name, with_statuses=False)
        sql = "SELECT status, COUNT(*) FROM instances"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " GROUP BY status"
        counts = {str(status): 0 for status in RuntimeStatus}
        for status, count in self._rows(sql, params):
            counts[status] = int(count)
        return counts

    def list_instances(self, query: InstanceQuery, name: str | None = None) -> InstancePage:
        """Instances matching the query and (when given) the orchestrator name, newest
        first, `query.top` at a time, as the management API pages them."""
        columns = INSTANCE_COLUMNS if query.show_input else _COLUMNS_WITHOUT_INPUT
        sql, params = listing_sql(query, columns, name)
        records, token = instance_page(query, self._rows(sql, params))
        return InstancePage(
            instances=[record.to_status(show_input=query.show_input) for record in records],
            continuation_token=token,
        )

    def parent_of(self, instance_id: str) -> str | None:
        """The id of the orchestration that started `instance_id` as a sub-orchestration."""
        rows = self._rows(
            "SELECT parent_instance_id FROM instances WHERE instance_id = ?", [instance_id]
        )
        return rows[0][0] if rows else None
