"""Webhook delivery: from the outbox to a durable delivery orchestration, within a second.

An operation's webhook moves through these stages (see operations/webhooks.py for the
signature and docs/operations.md "Webhooks" for the receiver's side):

1. `webhooks/<id>.json` (waiting): written by the start request before the operation
   starts, so an accepted operation's webhook is never lost, whatever is killed when.
2. `webhooks-due/<id>.json` (ended, or a cancel on its way): the operation's own last step
   moves it there (operations/lifecycle.py `announce_operation_end`), and so does
   DELETE before it terminates the operation (`announce_cancel`).
3. The hand-over timer (OPS_WEBHOOK_SCHEDULE, every second) reads the due entries. Once
   the operation's status reads terminal through the same durable client the status
   monitor uses, it starts the delivery orchestration `webhook-<id>` with the final status
   body, then deletes the entry. A receiver can therefore never get the webhook before
   the monitor reports the end.
4. The orchestration `webhook_delivery` POSTs from an activity (with a timeout), retries
   with exponential backoff on durable timers up to OPS_WEBHOOK_MAX_ATTEMPTS, and then
   records the abandonment in `webhooks-abandoned/<id>.json`. Each webhook is its own
   instance, so a dead receiver holds up nobody else's deliveries.

Why a timer hands over rather than the operation itself: only a function with a durable
client can read an operation's status or start an instance, and on durablehost neither an
orchestrator nor an activity has one (see operations/lifecycle.py).

The outbox sweep (OPS_WEBHOOK_SWEEP_SCHEDULE, every minute) is the safety net for ends
that skipped both announcements: an instance terminated through the built-in Durable
Functions terminate URL, or an announcement that failed while storage was down. It moves
the entries of ended operations to `webhooks-due/` and drops those of operations that no
longer exist.

Delivery is at least once: a host killed between starting `webhook-<id>` and deleting the
due entry starts nothing twice (the instance exists), but one killed in the middle of a
POST sends it again. Receivers deduplicate on `X-Ops-Delivery`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Generator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from operations.blobstore import BlobStore, webhook_blob_name
from operations.handlers.common import status_of
from operations.kinds import find_kind_by_orchestrator
from operations.lifecycle import ANNOUNCE_ACTIVITY
from operations.monitor import TERMINAL_STATES, OperationLinks, OperationState, iso_utc
from operations.outbound import OutboundRefused, OutboundUnreachable
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

__all__ = [
    "DELIVERY_ORCHESTRATOR",
    "announce_cancel",
    "bp",
    "delivery_instance_id",
    "due_blob_name",
    "hand_over_webhooks",
    "purge_delivery",
    "sweep_webhooks",
]

log = logging.getLogger(__name__)

bp = df.Blueprint()

DELIVERY_ORCHESTRATOR = "webhook_delivery"
POST_ACTIVITY = "post_operation_webhook"
ABANDON_ACTIVITY = "abandon_operation_webhook"
DUE_FOLDER = "webhooks-due/"
WAITING_FOLDER = "webhooks/"
# A cap on the doubling backoff of webhook retries.
BACKOFF_CAP_SECONDS = 3600.0
# At most this many due entries are handed over at once per tick.
_HAND_OVER_CONCURRENCY = 8
# The sweep drops a waiting entry whose operation does not exist only when the entry is
# older than this: the start request writes the entry just before it starts the operation.
_ORPHAN_GRACE = timedelta(minutes=5)


def delivery_instance_id(operation_id: str) -> str:
    """The delivery orchestration's instance id: one per operation, so a second start is
    recognised (and the operations list, which keeps only operation kinds, skips it)."""
    return f"webhook-{operation_id}"


def due_blob_name(operation_id: str) -> str:
    """Where an ended operation's outbox entry waits for the hand-over timer."""
    return f"{DUE_FOLDER}{operation_id}.json"


# --------------------------------------------------------------------- announcements


def move_to_due(store: BlobStore, operation_id: str) -> bool:
    """Move the waiting entry to `webhooks-due/`; False when there is none (no webhook, or
    already moved: running twice is harmless). Copy first, so a crash loses nothing."""
    record = store.read_record(webhook_blob_name(operation_id))
    if record is None:
        return False
    store.replace_record(due_blob_name(operation_id), record.body, None)
    store.delete_record(webhook_blob_name(operation_id))
    return True


@bp.activity_trigger(input_name="announcement", activity=ANNOUNCE_ACTIVITY)
def announce_operation_end(announcement: dict[str, Any]) -> bool:
    """An operation's last step (operations/lifecycle.py): its webhook is due."""
    return move_to_due(BlobStore.from_settings(), str(announcement["operationId"]))


async def announce_cancel(operation_id: str) -> None:
    """DELETE calls this before it terminates the operation: a terminated orchestrator
    runs no last step of its own. Never raises: the outbox sweep is the fallback."""
    try:
        store = await asyncio.to_thread(BlobStore.from_settings)
        await asyncio.to_thread(move_to_due, store, operation_id)
    except Exception:
        log.exception("announcing the cancel of %s to its webhook failed", operation_id)


# --------------------------------------------------------------------- hand-over


@bp.timer_trigger(
    schedule=get_setting("OPS_WEBHOOK_SCHEDULE") or "*/1 * * * * *",
    arg_name="timer",
    run_on_startup=False,
)
@bp.durable_client_input(client_name="client")
async def hand_over_ended_webhooks(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Start the delivery of every webhook whose operation has ended."""
    await hand_over_webhooks(client)


async def hand_over_webhooks(client: df.DurableOrchestrationClient) -> int:
    """One pass over `webhooks-due/`; how many deliveries were started."""
    if not get_setting("OPS_WEBHOOK_SECRET"):
        return 0
    store = await asyncio.to_thread(BlobStore.from_settings)
    names = await asyncio.to_thread(store.list_records, DUE_FOLDER)
    if not names:
        return 0
    gate = asyncio.Semaphore(_HAND_OVER_CONCURRENCY)

    async def one(name: str) -> bool:
        async with gate:
            try:
                return await _hand_over(client, store, name)
            except Exception:
                # One broken entry must not stop the others; it is retried next tick.
                log.exception("handing over the webhook in %s failed", name)
                return False

    results = await asyncio.gather(*(one(name) for name in names))
    return sum(1 for started in results if started)


async def _entry_and_status(
    client: df.DurableOrchestrationClient, store: BlobStore, name: str
) -> tuple[WebhookEntry, dict[str, Any] | None] | None:
    """The webhook entry stored in `name` and its operation's status body; None when the
    entry is gone, a None body when its operation is (never started, or expired)."""
    record = await asyncio.to_thread(store.read_record, name)
    if record is None:
        return None
    entry = WebhookEntry.from_json(record.body)
    status = await client.get_status(entry.operation_id)
    kind = find_kind_by_orchestrator(status.name) if status else None
    if not status or kind is None:
        return entry, None
    return entry, status_of(status, kind, OperationLinks(entry.api_base, entry.api_query))


def _has_ended(status_body: dict[str, Any]) -> bool:
    return OperationState(status_body["status"]) in TERMINAL_STATES


async def _hand_over(client: df.DurableOrchestrationClient, store: BlobStore, name: str) -> bool:
    found = await _entry_and_status(client, store, name)
    if found is None:
        return False
    entry, body = found
    if body is None:
        # Expired meanwhile: nobody can be told anything useful any more.
        await asyncio.to_thread(store.delete_record, name)
        return False
    if not _has_ended(body):
        return False  # a cancel on its way: the next tick looks again
    instance_id = delivery_instance_id(entry.operation_id)
    started = False
    # start_new replaces an ended instance of the same id: after a crash between the start
    # and the delete below, that would send the webhook a second time.
    if not await client.get_status(instance_id):
        order = delivery_order(entry, body)
        await client.start_new(DELIVERY_ORCHESTRATOR, instance_id, order)
        started = True
    await asyncio.to_thread(store.delete_record, name)
    return started


def delivery_order(entry: WebhookEntry, status_body: dict[str, Any]) -> dict[str, Any]:
    """The delivery orchestration's input: what to send where, and the retry policy as it
    was when the delivery started (an orchestrator must not read settings: replay)."""
    return {
        "entry": entry.to_json(),
        "payload": {"event": EVENT_NAME, "operation": status_body},
        "maxAttempts": max(1, get_int("OPS_WEBHOOK_MAX_ATTEMPTS")),
        "backoffSeconds": get_float("OPS_WEBHOOK_BACKOFF_SECONDS"),
    }


# --------------------------------------------------------------------- delivery


@bp.orchestration_trigger(context_name="context", orchestration=DELIVERY_ORCHESTRATOR)
def webhook_delivery(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """POST until a 2xx, backing off on durable timers; give up after the last attempt."""
    order = context.get_input()
    entry = order["entry"]
    max_attempts = int(order["maxAttempts"])
    attempts, last_error = 0, ""
    while attempts < max_attempts:
        attempts += 1
        try:
            outcome = yield context.call_activity(
                POST_ACTIVITY,
                {
                    "operationId": entry["operationId"],
                    "url": entry["callbackUrl"],
                    "payload": order["payload"],
                },
            )
        except Exception as error:  # the activity never raises; this is a host failure
            outcome = {"delivered": False, "error": str(error)}
        if outcome["delivered"]:
            return {"delivered": True, "attempts": attempts}
        last_error = str(outcome["error"])
        if outcome.get("final"):
            break
        if attempts < max_attempts:
            delay = backoff_delay(
                attempts,
                base_seconds=float(order["backoffSeconds"]),
                cap_seconds=BACKOFF_CAP_SECONDS,
                rand=lambda: _replay_safe_fraction(context),
            )
            retry_at = context.current_utc_datetime + timedelta(seconds=delay)
            context.set_custom_status(
                {"attempts": attempts, "lastError": last_error, "nextAttemptAt": iso_utc(retry_at)}
            )
            yield context.create_timer(retry_at)
    yield context.call_activity(
        ABANDON_ACTIVITY, {"entry": entry, "attempts": attempts, "lastError": last_error}
    )
    return {"delivered": False, "attempts": attempts, "lastError": last_error}


def _replay_safe_fraction(context: df.DurableOrchestrationContext) -> float:
    """A jitter fraction in [0, 1) that is the same on every replay (random() is not)."""
    return uuid.UUID(context.new_uuid()).int / 2**128


@bp.activity_trigger(input_name="attempt", activity=POST_ACTIVITY)
def post_operation_webhook(attempt: dict[str, Any]) -> dict[str, Any]:
    """One signed POST; `{"delivered": bool, "error": str}`, never an exception."""
    secret = get_setting("OPS_WEBHOOK_SECRET")
    if not secret:
        return {"delivered": False, "error": "the app has no OPS_WEBHOOK_SECRET to sign with"}
    payload = json.dumps(attempt["payload"]).encode()
    headers = {
        "Content-Type": "application/json",
        # Signed now, not when the delivery started: receivers reject old timestamps.
        SIGNATURE_HEADER: signature_header(secret, int(time.time()), payload),
        DELIVERY_HEADER: str(attempt["operationId"]),
        EVENT_HEADER: EVENT_NAME,
        "User-Agent": "durable-ops-webhooks/1",
    }
    timeout = get_float("OPS_WEBHOOK_TIMEOUT_SECONDS")
    try:
        code = post_webhook(str(attempt["url"]), payload, headers, timeout)
    except OutboundRefused as refusal:
        # Policy, not luck: retrying would be refused the same way.
        return {"delivered": False, "error": str(refusal), "final": True}
    except OutboundUnreachable as failure:
        return {"delivered": False, "error": str(failure)}
    except ValueError as failure:  # checked at the start request; kept for older entries
        return {"delivered": False, "error": f"the callbackUrl {failure}", "final": True}
    if 200 <= code < 300:
        return {"delivered": True, "error": ""}
    return {"delivered": False, "error": f"the receiver answered HTTP {code}"}


@bp.activity_trigger(input_name="abandonment", activity=ABANDON_ACTIVITY)
def abandon_operation_webhook(abandonment: dict[str, Any]) -> None:
    """Record a webhook given up after its last attempt in `webhooks-abandoned/`."""
    entry = WebhookEntry.from_json(abandonment["entry"])
    given_up = replace(
        entry,
        attempts=int(abandonment["attempts"]),
        last_error=str(abandonment["lastError"])[:500],
        next_attempt_at=datetime.now(UTC),
    )
    store = BlobStore.from_settings()
    store.replace_record(
        webhook_blob_name(entry.operation_id, abandoned=True), given_up.to_json(), None
    )
    log.warning("gave up the webhook of %s: %s", entry.operation_id, given_up.last_error)


# --------------------------------------------------------------------- safety net


@bp.timer_trigger(
    schedule=get_setting("OPS_WEBHOOK_SWEEP_SCHEDULE") or "0 * * * * *",
    arg_name="timer",
    run_on_startup=False,
)
@bp.durable_client_input(client_name="client")
async def sweep_webhook_outbox(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Find ended operations whose end was never announced to their webhook."""
    await sweep_webhooks(client, datetime.now(UTC))


async def sweep_webhooks(client: df.DurableOrchestrationClient, now: datetime) -> int:
    """One pass over the waiting entries; how many were found ended and made due."""
    store = await asyncio.to_thread(BlobStore.from_settings)
    names = await asyncio.to_thread(store.list_records, WAITING_FOLDER)
    moved = 0
    for name in names:
        try:
            moved += await _sweep_one(client, store, name, now)
        except Exception:
            log.exception("sweeping the webhook entry %s failed", name)
    return moved


async def _sweep_one(
    client: df.DurableOrchestrationClient, store: BlobStore, name: str, now: datetime
) -> bool:
    found = await _entry_and_status(client, store, name)
    if found is None:
        return False
    entry, body = found
    if body is None:
        if now - entry.created_at > _ORPHAN_GRACE:
            # Never started (its start request failed) or expired: nobody to tell.
            await asyncio.to_thread(store.delete_record, name)
        return False
    if not _has_ended(body):
        return False
    log.info("webhook of %s was not announced at its end; handing it over", entry.operation_id)
    return await asyncio.to_thread(move_to_due, store, entry.operation_id)


# --------------------------------------------------------------------- expiry


async def purge_delivery(client: df.DurableOrchestrationClient, operation_id: str) -> None:
    """Purge an expiring operation's delivery instance, if it has one."""
    try:
        await client.purge_instance_history(delivery_instance_id(operation_id))
    except Exception:
        # Still retrying a dead receiver (a running instance is not purged): it ends by
        # itself after its last attempt; its history is all that is left behind.
        log.warning("the webhook delivery of expired operation %s was not purged", operation_id)
