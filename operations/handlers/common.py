"""What every handler needs: JSON answers, the blob store, finding an operation (404/410)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from operations.blobstore import BlobStore, tombstone_blob_name
from operations.kinds import OperationKind, all_kinds, find_kind_by_orchestrator
from operations.monitor import OperationLinks, is_valid_operation_id, status_body
from operations.problems import problem
from operations.requests import BadRequest
from operations.settings import get_int

__all__ = [
    "bad_request",
    "blob_store",
    "find_operation",
    "gone_or_missing",
    "json_response",
    "request_links",
    "retry_after",
    "status_of",
    "utc_now",
]


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """A JSON answer."""
    return func.HttpResponse(
        json.dumps(body),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def bad_request(error: BadRequest) -> func.HttpResponse:
    """The problem+json answer to a refused request."""
    return problem(error.status, error.slug, error.detail, **error.extra)


def request_links(req: func.HttpRequest) -> OperationLinks:
    """The links of this request's host; BadRequest 400 when its Host is not a host.

    The host builds the request URL from the Host header as sent, and a hostile one
    (`[::1`, `a b`, a port past 65535) either breaks URL parsing or would be handed back
    in every link.
    """
    try:
        parts = urlsplit(req.url)
        _ = parts.port  # raises ValueError for a port that is not 0..65535
        netloc = parts.netloc
    except ValueError:
        netloc = ""
    if not netloc or not netloc.isascii() or not netloc.isprintable() or " " in netloc:
        raise BadRequest(
            400,
            "invalid-host",
            "The Host header is not a host name or address with an optional port "
            "(e.g. api.example.com or [::1]:7071).",
        )
    return OperationLinks.from_request_url(req.url)


def retry_after() -> str:
    """The Retry-After value handed out while an operation runs."""
    return str(get_int("OPS_RETRY_AFTER_SECONDS"))


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


async def blob_store() -> BlobStore:
    """The app's blob store (built off the event loop: it may read a credential)."""
    return await asyncio.to_thread(BlobStore.from_settings)


async def gone_or_missing(operation_id: str) -> func.HttpResponse:
    """404, or 410 when expiry left a tombstone for this id."""
    if is_valid_operation_id(operation_id):
        store = await blob_store()
        tombstone = await asyncio.to_thread(store.read_record, tombstone_blob_name(operation_id))
        if tombstone is not None:
            return problem(
                410,
                "operation-expired",
                f"Operation {operation_id} ended and expired at "
                f"{tombstone.body.get('expiredAt')}; its status and result were deleted.",
                expiredAt=tombstone.body.get("expiredAt"),
            )
    hint = ""
    if operation_id in {kind.name for kind in all_kinds()}:
        hint = f" To start a {operation_id} operation, POST to this URL."
    return problem(404, "operation-not-found", f"There is no operation {operation_id!r}.{hint}")


async def find_operation(
    client: df.DurableOrchestrationClient, operation_id: str
) -> tuple[Any, OperationKind] | func.HttpResponse:
    """The instance status and kind, or the 404/410 response to send instead."""
    if not is_valid_operation_id(operation_id):
        return await gone_or_missing(operation_id)
    status = await client.get_status(operation_id)
    kind = find_kind_by_orchestrator(status.name) if status else None
    if not status or kind is None:
        return await gone_or_missing(operation_id)
    return status, kind


def status_of(status: Any, kind: OperationKind, links: OperationLinks) -> dict[str, Any]:
    """The public status body of a durable instance status."""
    runtime = status.runtime_status.value if status.runtime_status is not None else None
    return status_body(
        operation_id=str(status.instance_id),
        kind=kind.name,
        runtime_status=runtime,
        custom_status=status.custom_status,
        output=status.output,
        created=status.created_time,
        updated=status.last_updated_time,
        links=links,
    )
