"""Timer-triggered housekeeping: expiry of old operations and webhook delivery.

Expiry (OPS_PURGE_SCHEDULE): every operation that ended more than OPS_OPERATION_TTL_SECONDS
ago gets a tombstone first (so it answers 410, never a confusing 404), then its result
blobs are deleted and its history purged. Expired Idempotency-Key records are deleted too.

Webhooks (OPS_WEBHOOK_SCHEDULE): see operations/webhooks.py for the outbox design.

Schedules are read from settings when the app is imported, so they need no `%NAME%`
app setting to exist in Azure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from operations.blobstore import BlobStore, tombstone_blob_name, webhook_blob_name
from operations.idempotency import IdempotencyStore
from operations.instance_pages import iter_instances
from operations.kinds import find_kind_by_orchestrator
from operations.monitor import (
    TERMINAL_STATES,
    OperationLinks,
    OperationState,
    iso_utc,
    operation_state,
    status_body,
)
from operations.settings import get_float, get_int, get_setting
from operations.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_NAME,
    SIGNATURE_HEADER,
    WebhookEntry,
    backoff_delay,
    post_webhook,
    signature_header,
)

__all__ = ["bp", "deliver_webhooks", "expire_operations"]

log = logging.getLogger(__name__)

bp = df.Blueprint()

_ENDED_RUNTIME = [
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.Failed,
    df.OrchestrationRuntimeStatus.Terminated,
    df.OrchestrationRuntimeStatus.Canceled,
]
# A cap on the doubling backoff of webhook retries.
_WEBHOOK_BACKOFF_CAP_SECONDS = 3600.0
# At most this many webhook POSTs run at once per tick.
_WEBHOOK_CONCURRENCY = 8


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


@bp.timer_trigger(
    schedule=get_setting("OPS_WEBHOOK_SCHEDULE") or "*/5 * * * * *",
    arg_name="timer",
    run_on_startup=False,
)
@bp.durable_client_input(client_name="client")
async def deliver_pending_webhooks(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Deliver the webhooks of operations that have ended."""
    await deliver_webhooks(client, datetime.now(UTC))


async def deliver_webhooks(client: df.DurableOrchestrationClient, now: datetime) -> int:
    """One delivery pass over the outbox; how many deliveries succeeded."""
    secret = get_setting("OPS_WEBHOOK_SECRET")
    if not secret:
        return 0
    store = await asyncio.to_thread(BlobStore.from_settings)
    names = await asyncio.to_thread(store.list_records, "webhooks/")
    gate = asyncio.Semaphore(_WEBHOOK_CONCURRENCY)

    async def one(name: str) -> bool:
        async with gate:
            try:
                return await _deliver_one(client, store, name, secret, now)
            except Exception:
                # One broken entry must not stop the others; it is retried next tick.
                log.exception("webhook delivery from %s failed", name)
                return False

    results = await asyncio.gather(*(one(name) for name in names))
    return sum(1 for ok in results if ok)


async def _deliver_one(
    client: df.DurableOrchestrationClient, store: BlobStore, name: str, secret: str, now: datetime
) -> bool:
    record = await asyncio.to_thread(store.read_record, name)
    if record is None:
        return False
    entry = WebhookEntry.from_json(record.body)
    if not entry.is_due(now):
        return False
    status = await client.get_status(entry.operation_id)
    kind = find_kind_by_orchestrator(status.name) if status else None
    if not status or kind is None:
        # Expired or never started: nobody can be told anything useful any more.
        await asyncio.to_thread(store.delete_record, name)
        return False
    links = OperationLinks(entry.api_base, entry.api_query)
    runtime = status.runtime_status.value if status.runtime_status else None
    body = status_body(
        operation_id=entry.operation_id,
        kind=kind.name,
        runtime_status=runtime,
        custom_status=status.custom_status,
        output=status.output,
        created=status.created_time,
        updated=status.last_updated_time,
        links=links,
    )
    if OperationState(body["status"]) not in TERMINAL_STATES:
        return False
    timeout = get_float("OPS_WEBHOOK_TIMEOUT_SECONDS")
    lease = entry.leased(now, timedelta(seconds=timeout * 3))
    if not await asyncio.to_thread(store.replace_record, name, lease.to_json(), record.etag):
        return False  # another tick is delivering it
    payload = json.dumps({"event": EVENT_NAME, "operation": body}).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(secret, timestamp, payload),
        DELIVERY_HEADER: entry.operation_id,
        EVENT_HEADER: EVENT_NAME,
        "User-Agent": "durable-ops-webhooks/1",
    }
    error = ""
    try:
        code = await asyncio.to_thread(post_webhook, entry.callback_url, payload, headers, timeout)
        if 200 <= code < 300:
            await asyncio.to_thread(store.delete_record, name)
            return True
        error = f"the receiver answered HTTP {code}"
    except OSError as failure:
        error = f"the receiver could not be reached: {failure}"
    failed = entry.failed(
        datetime.now(UTC),
        backoff_delay(
            entry.attempts + 1,
            base_seconds=get_float("OPS_WEBHOOK_BACKOFF_SECONDS"),
            cap_seconds=_WEBHOOK_BACKOFF_CAP_SECONDS,
            rand=random.random,
        ),
        error,
    )
    if failed.attempts >= get_int("OPS_WEBHOOK_MAX_ATTEMPTS"):
        abandoned: dict[str, Any] = failed.to_json()
        await asyncio.to_thread(
            store.replace_record,
            webhook_blob_name(entry.operation_id, abandoned=True),
            abandoned,
            None,
        )
        await asyncio.to_thread(store.delete_record, name)
        log.warning("gave up the webhook of %s: %s", entry.operation_id, error)
    else:
        await asyncio.to_thread(store.replace_record, name, failed.to_json(), None)
    return False
