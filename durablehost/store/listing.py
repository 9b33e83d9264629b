"""How the SQLite hub's instances are filtered and paged: the SQL both the store's listing
(the management API) and the dashboard's read-only overview run, and their continuation
tokens, so a token one hands out means the same to the other.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from durablehost.errors import InvalidInputError
from durablehost.model.instances import InstanceQuery
from durablehost.store.base import InstanceRecord
from durablehost.store.rows import instance_from_row
from durablehost.wire.orchestration import format_timestamp

__all__ = ["INSTANCE_COLUMNS", "instance_filters", "instance_page", "listing_sql"]

INSTANCE_COLUMNS = (
    "instance_id, execution_id, name, status, created_at, updated_at, input, output, "
    "custom_status, parent_instance_id, parent_execution_id, parent_task_id"
)


def instance_filters(
    query: InstanceQuery, name: str | None = None, *, with_statuses: bool = True
) -> tuple[list[str], list[Any]]:
    """The WHERE terms (to be joined with AND) and their parameters for the query's
    filters, the orchestrator `name` when given; its statuses unless `with_statuses` is
    False (counts per status want every status)."""
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


def listing_sql(
    query: InstanceQuery, columns: str = INSTANCE_COLUMNS, name: str | None = None
) -> tuple[str, list[Any]]:
    """The SELECT of one page of instances matching the query (and `name`), newest first,
    after the query's continuation token; one row more than `top`, to tell whether
    another page follows (see `instance_page`)."""
    where, params = instance_filters(query, name)
    if query.continuation_token:
        created, instance_id = _decode_token(query.continuation_token)
        where.append("(created_at < ? OR (created_at = ? AND instance_id < ?))")
        params += [created, created, instance_id]
    sql = f"SELECT {columns} FROM instances"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, instance_id DESC"
    limit = _page_size(query)
    if limit is not None:
        sql += f" LIMIT {limit + 1}"
    return sql, params


def instance_page(
    query: InstanceQuery, rows: Sequence[Sequence[Any]]
) -> tuple[list[InstanceRecord], str | None]:
    """The records of the rows `listing_sql` selected, and the continuation token of the
    next page (None on the last)."""
    records = [instance_from_row(row) for row in rows]
    limit = _page_size(query)
    if limit is None or len(records) <= limit:
        return records, None
    records = records[:limit]
    last = records[-1]
    return records, _encode_token(format_timestamp(last.created_at), last.instance_id)


def _page_size(query: InstanceQuery) -> int | None:
    return query.top if query.top and query.top > 0 else None


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
