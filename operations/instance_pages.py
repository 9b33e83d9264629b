"""The task hub's instance list, one page at a time, through the extension's own continuation.

The SDK's `get_status_by` / `get_status_all` (azure-functions-durable 1.x) send one request
and drop the `x-ms-continuation-token` header the Durable Functions extension answers with,
so on Azure they return only the first page of instances and nothing says more were left
out. The operations list and the expiry sweep must see every operation, so they read the
list here: one GET of `instances/` under the durable client's `rpcBaseUrl` per page (the
extension's local RPC endpoint on Azure, durablehost's management API locally) with `top`,
the filters, and the token of the previous page sent back in the same header.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import azure.durable_functions as df
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from operations.errors import TaskHubUnavailableError

__all__ = [
    "CONTINUATION_HEADER",
    "InstancePage",
    "iter_instances",
    "list_url",
    "read_instance_page",
]

CONTINUATION_HEADER: Final = "x-ms-continuation-token"
# A page of the management API is small JSON; a slow answer means the hub is in trouble.
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
# The page size the sweep reads with: the extension's own default.
_SWEEP_PAGE_SIZE: Final = 100


@dataclass(frozen=True, slots=True)
class InstancePage:
    """One page of instance statuses, and the token for the next page (None on the last)."""

    instances: list[DurableOrchestrationStatus]
    continuation: str | None


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_url(
    rpc_base_url: str,
    *,
    top: int,
    runtime_status: Sequence[str] = (),
    created_time_from: datetime | None = None,
    created_time_to: datetime | None = None,
) -> str:
    """The management API's list URL for one page, with the filters the SDK would send."""
    params: dict[str, str] = {"top": str(top), "showInput": "false"}
    if runtime_status:
        params["runtimeStatus"] = ",".join(runtime_status)
    if created_time_from is not None:
        params["createdTimeFrom"] = _iso(created_time_from)
    if created_time_to is not None:
        params["createdTimeTo"] = _iso(created_time_to)
    return f"{rpc_base_url}instances/?{urlencode(params)}"


def _rpc_base_url(client: df.DurableOrchestrationClient) -> str:
    # The SDK keeps the binding's URLs in this attribute; it has no public accessor.
    base = getattr(getattr(client, "_orchestration_bindings", None), "rpc_base_url", None)
    if not isinstance(base, str) or not base:
        raise TaskHubUnavailableError(
            "the durable client binding has no rpcBaseUrl; the task hub cannot be listed"
        )
    return base if base.endswith("/") else base + "/"


async def read_instance_page(
    client: df.DurableOrchestrationClient,
    *,
    top: int,
    continuation: str | None = None,
    runtime_status: Sequence[str] = (),
    created_time_from: datetime | None = None,
    created_time_to: datetime | None = None,
) -> InstancePage:
    """One page of at most `top` instances after `continuation` (None: the first page)."""
    url = list_url(
        _rpc_base_url(client),
        top=top,
        runtime_status=runtime_status,
        created_time_from=created_time_from,
        created_time_to=created_time_to,
    )
    headers = {CONTINUATION_HEADER: continuation} if continuation else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=_REQUEST_TIMEOUT) as session,
            session.get(url, headers=headers) as response,
        ):
            body = await response.read()
            if response.status != 200:
                raise TaskHubUnavailableError(
                    f"listing instances answered {response.status}: "
                    f"{body[:300].decode('utf-8', 'replace')}"
                )
            next_token = response.headers.get(CONTINUATION_HEADER) or None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise TaskHubUnavailableError(f"listing instances failed: {error}") from error
    try:
        items: Any = json.loads(body) if body.strip() else []
    except ValueError as error:
        raise TaskHubUnavailableError(
            f"listing instances answered malformed JSON: {error}"
        ) from None
    if not isinstance(items, list):
        raise TaskHubUnavailableError("listing instances answered something other than a list")
    statuses = [DurableOrchestrationStatus.from_json(item) for item in items]
    return InstancePage(statuses, next_token)


async def iter_instances(
    client: df.DurableOrchestrationClient,
    *,
    runtime_status: Sequence[str] = (),
    created_time_from: datetime | None = None,
    created_time_to: datetime | None = None,
    page_size: int = _SWEEP_PAGE_SIZE,
) -> AsyncIterator[DurableOrchestrationStatus]:
    """Every matching instance, page after page until the hub hands out no more token."""
    continuation: str | None = None
    while True:
        page = await read_instance_page(
            client,
            top=page_size,
            continuation=continuation,
            runtime_status=runtime_status,
            created_time_from=created_time_from,
            created_time_to=created_time_to,
        )
        for status in page.instances:
            yield status
        if page.continuation is None or page.continuation == continuation:
            return
        continuation = page.continuation
