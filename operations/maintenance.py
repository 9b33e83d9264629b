"""Timer-triggered housekeeping: expiry of old operations.

Expiry (OPS_PURGE_SCHEDULE): every operation that ended more than OPS_OPERATION_TTL_SECONDS
ago gets a tombstone first (so it answers 410, never a confusing 404), then its result
blobs are deleted and its history purged, with the history of its webhook delivery
(operations/webhook_delivery.py, which has the webhook timers). Expired Idempotency-Key
records are deleted too.

Schedules are read from settings when the app is imported, so they need no `%NAME%`
app setting to exist in Azure.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from operations.blobstore import BlobStore, tombstone_blob_name
from operations.idempotency import IdempotencyStore
from operations.instance_pages import iter_instances
from operations.kinds import find_kind_by_orchestrator
from operations.monitor import iso_utc, operation_state
from operations.settings import get_int, get_setting
from operations.webhook_delivery import purge_delivery

__all__ = ["bp", "expire_operations"]

log = logging.getLogger(__name__)

bp = df.Blueprint()

_ENDED_RUNTIME = [
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.Failed,
    df.OrchestrationRuntimeStatus.Terminated,
    df.OrchestrationRuntimeStatus.Canceled,
]


@bp.timer_trigger(
    schedule=get_setting("OPS_PURGE_SCHEDULE") or "0 */5 * * * *",
    arg_name="timer",
    run_on_startup=False,
)
@bp.durable_client_input(client_name="client")
async def purge_expired_operations(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Expire operations past their TTL (tombstone, blobs, history) and old keys."""
    expired = await expire_operations(client, datetime.now(UTC))
    if expired:
        log.info("expired %d operations", expired)


async def expire_operations(client: df.DurableOrchestrationClient, now: datetime) -> int:
    """One expiry pass; how many operations were expired."""
    ttl = timedelta(seconds=get_int("OPS_OPERATION_TTL_SECONDS"))
    store = await asyncio.to_thread(BlobStore.from_settings)
    # Whatever ended a TTL ago was created at least a TTL ago: let the runtime filter.
    # Paged here, not through get_status_by: the SDK reads only the hub's first page.
    statuses = iter_instances(
        client, created_time_to=now - ttl, runtime_status=[r.value for r in _ENDED_RUNTIME]
    )
    expired = 0
    async for status in statuses:
        kind = find_kind_by_orchestrator(status.name)
        ended = status.last_updated_time or status.created_time
        if kind is None or ended is None:
            continue
        if ended.tzinfo is None:
            ended = ended.replace(tzinfo=UTC)
        if now - ended < ttl:
            continue
        try:
            await _expire_one(client, store, status, kind.name, ended, now)
        except Exception:
            # One stuck operation must not keep the others alive; it is retried next tick.
            log.exception("expiring operation %s failed", status.instance_id)
            continue
        expired += 1
    keys = IdempotencyStore(store, timedelta(seconds=get_int("OPS_IDEMPOTENCY_TTL_SECONDS")))
    await asyncio.to_thread(keys.delete_expired, now)
    return expired


async def _expire_one(
    client: df.DurableOrchestrationClient,
    store: BlobStore,
    status: Any,
    kind: str,
    ended: datetime,
    now: datetime,
) -> None:
    operation_id = str(status.instance_id)
    runtime = status.runtime_status.value if status.runtime_status else None
    tombstone = {
        "id": operation_id,
        "kind": kind,
        "status": str(operation_state(runtime)),
        "createdAt": iso_utc(status.created_time),
        "endedAt": iso_utc(ended),
        "expiredAt": iso_utc(now),
    }
    # Tombstone first: from here on the operation answers 410, whatever fails next.
    await asyncio.to_thread(
        store.replace_record, tombstone_blob_name(operation_id), tombstone, None
    )
    await asyncio.to_thread(store.delete_operation_blobs, operation_id)
    await client.purge_instance_history(operation_id)
    await purge_delivery(client, operation_id)
