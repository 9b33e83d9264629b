"""Read-only queries over the SQLite task hub for the dashboard: counts per status,
listings filtered by orchestrator name, an instance's parent.

The management API's listing has no name filter and no counts; the dashboard asks these
here instead. They run on a connection of their own, never the store's: WAL lets a reader
work beside the writer, so a dashboard polling every few seconds does not queue behind
the engine's commits on the store's lock (nor they behind it).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from durablehost.errors import InvalidInputError
from durablehost.model.instances import InstancePage, InstanceQuery, RuntimeStatus
from durablehost.store.rows import instance_from_row
from durablehost.wire.orchestration import format_timestamp

__all__ = ["HubOverview"]

_COLUMNS = (
    "instance_id, execution_id, name, status, created_at, updated_at, input, output, "
    "custom_status, parent_instance_id, parent_execution_id, parent_task_id"
)
# What a listing selects when the caller asked for no input (showInput=false).
_COLUMNS_WITHOUT_INPUT = _COLUMNS.replace(" input,", " NULL,")


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
        where, params = _filters(query, name, with_statuses=False)
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
        where, params = _filters(query, name, with_statuses=True)
        if query.continuation_token:
            created, instance_id = _decode_token(query.continuation_token)
            where.append("(created_at < ? OR (created_at = ? AND instance_id < ?))")
            params += [created, created, instance_id]
        columns = _COLUMNS if query.show_input else _COLUMNS_WITHOUT_INPUT
        sql = f"SELECT {columns} FROM instances"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, instance_id DESC"
        limit = query.top if query.top and query.top > 0 else None
        if limit is not None:
            sql += f" LIMIT {limit + 1}"
        records = [instance_from_row(row) for row in self._rows(sql, params)]
        token = None
        if limit is not None and len(records) > limit:
            records = records[:limit]
            last = records[-1]
            token = _encode_token(format_timestamp(last.created_at), last.instance_id)
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


def _filters(
    query: InstanceQuery, name: str | None, *, with_statuses: bool
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.created_from is not None:
        where.append("created_at >= ?")
        params.append(format_timestamp(query.created_from))
    if query.created_to is not None:
        where.append("created_at <= ?")
        params.append(format_timestamp(query.created_to))
    if with_statuses and query.statuses:
        statuses = sorted(status.value for status in query.statuses)
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if query.instance_id_prefix:
        # A range, not LIKE: '%' and '_' in ids mean themselves.
        where.append("instance_id >= ? AND instance_id < ?")
        params += [query.instance_id_prefix, query.instance_id_prefix + "\U0010ffff"]
    if name:
        # Function names are case-insensitive in the Functions runtime.
        where.append("name = ? COLLATE NOCASE")
        params.append(name)
    return where, params


def _encode_token(created_at: str, instance_id: str) -> str:
    raw = json.dumps([created_at, instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[str, str]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not (
            isinstance(decoded, list)
            and len(decoded) == 2
            and all(isinstance(part, str) for part in decoded)
        ):
            raise ValueError("not a [created_at, instance_id] pair")
        return decoded[0], decoded[1]
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            "The continuation token is not one this host issued; start the listing again "
            "without x-ms-continuation-token."
        ) from exc
