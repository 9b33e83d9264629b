"""POST /api/operations/{kind}: validate, claim the Idempotency-Key, start, answer 202."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from operations.blobstore import tombstone_blob_name, webhook_blob_name
from operations.errors import (
    FieldProblem,
    IdempotencyConflictError,
    InputValidationError,
    UnknownKindError,
)
from operations.handlers.common import (
    bad_request,
    blob_store,
    json_response,
    request_links,
    retry_after,
    utc_now,
)
from operations.idempotency import IdempotencyStore, check_key, request_fingerprint
from operations.kinds import OperationKind, all_kinds, get_kind
from operations.kinds import operation_input as build_operation_input
from operations.lifecycle import webhook_flag
from operations.monitor import OperationLinks, OperationState
from operations.problems import problem, validation_problem
from operations.requests import BadRequest, parse_json_body, read_header
from operations.settings import get_int, get_setting
from operations.validation import check_url
from operations.webhooks import WebhookEntry

__all__ = ["StartRequest", "read_start_request", "start_operation"]


@dataclass(frozen=True, slots=True)
class StartRequest:
    """A checked start request: the kind's validated input and the optional webhook."""

    body: Any  # as sent: what the Idempotency-Key fingerprint covers
    payload: dict[str, Any]
    callback_url: str | None


def read_start_request(req: func.HttpRequest, kind: OperationKind) -> StartRequest:
    """Parse and validate a start body; BadRequest (413/415/400 JSON) or
    InputValidationError naming every bad field, callbackUrl included."""
    body = parse_json_body(
        req.get_body(), read_header(req.headers, "Content-Type"), get_int("OPS_MAX_REQUEST_BYTES")
    )
    problems: list[FieldProblem] = []
    callback_url: str | None = None
    kind_body = body
    if isinstance(body, dict):
        kind_body = {k: v for k, v in body.items() if k != "callbackUrl"}
        raw_callback = body.get("callbackUrl")
        reason = check_url(raw_callback) if raw_callback is not None else None
        if reason:
            problems.append(FieldProblem("callbackUrl", reason))
        elif raw_callback is not None and not get_setting("OPS_WEBHOOK_SECRET"):
            problems.append(
                FieldProblem(
                    "callbackUrl",
                    "webhooks are disabled on this app (no OPS_WEBHOOK_SECRET to sign them "
                    "with); leave callbackUrl out",
                )
            )
        elif raw_callback is not None:
            callback_url = str(raw_callback)
    payload: dict[str, Any] = {}
    try:
        payload = kind.input_schema.validate(kind_body)
    except InputValidationError as error:
        problems = error.problems + problems
    if problems:
        raise InputValidationError(problems)
    return StartRequest(body=body, payload=payload, callback_url=callback_url)


async def start_operation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, kind_name: str
) -> func.HttpResponse:
    """Validate, claim the idempotency key, record the webhook, start the orchestrator."""
    try:
        kind = get_kind(kind_name)
    except UnknownKindError:
        known = ", ".join(k.name for k in all_kinds())
        return problem(
            404, "unknown-kind", f"There is no operation kind {kind_name!r}; known: {known}."
        )
    try:
        request = read_start_request(req, kind)
    except BadRequest as error:
        return bad_request(error)
    except InputValidationError as error:
        return validation_problem(error.problems)
    payload, callback_url = request.payload, request.callback_url

    links = request_links(req)
    operation_id = uuid.uuid4().hex
    # check_key refuses anything but visible ASCII before the key is encoded or stored.
    key = req.headers.get("Idempotency-Key")
    replayed = False
    if key is not None:
        reason = check_key(key)
        if reason:
            return problem(400, "invalid-idempotency-key", reason)
        store = IdempotencyStore(
            await blob_store(), timedelta(seconds=get_int("OPS_IDEMPOTENCY_TTL_SECONDS"))
        )
        try:
            claim = await asyncio.to_thread(
                store.claim,
                key,
                fingerprint=request_fingerprint(kind.name, request.body),
                kind=kind.name,
                operation_id=operation_id,
                payload={"input": payload, "callbackUrl": callback_url},
                now=utc_now(),
            )
        except IdempotencyConflictError as error:
            return problem(
                422, "idempotency-key-reused", str(error), title="Idempotency-Key reused"
            )
        operation_id = claim.record.operation_id
        replayed = not claim.is_new

    if replayed:
        # The first request may have died between claiming the key and starting: finish it.
        existing = await client.get_status(operation_id)
        if not existing and not await _has_tombstone(operation_id):
            try:
                await _start(client, kind, operation_id, payload, callback_url, links)
            except Exception:
                # Or it was still on its way and has started the operation meanwhile
                # (the start then fails: the id exists). That is the outcome we wanted.
                if not await client.get_status(operation_id):
                    raise
    else:
        await _start(client, kind, operation_id, payload, callback_url, links)

    response_body: dict[str, Any] = dict(client.get_client_response_links(req, operation_id))
    response_body["operationUri"] = links.operation(operation_id)
    response_body["statusUri"] = links.status(operation_id)
    response_body["resultUri"] = links.result(operation_id)
    response_body["kind"] = kind.name
    # What the operation was when it was accepted; a replay answers what the first did.
    response_body["status"] = str(OperationState.NOT_STARTED)
    headers = {
        # The status monitor for generic async request-reply clients (Location, 303 at the
        # end); the status resource for Azure SDK pollers (azure-core reads
        # Operation-Location, then Azure-AsyncOperation).
        "Location": response_body["operationUri"],
        "Operation-Location": response_body["statusUri"],
        "Azure-AsyncOperation": response_body["statusUri"],
        "Retry-After": retry_after(),
    }
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(response_body, 202, headers)


async def _has_tombstone(operation_id: str) -> bool:
    store = await blob_store()
    record = await asyncio.to_thread(store.read_record, tombstone_blob_name(operation_id))
    return record is not None


async def _start(
    client: df.DurableOrchestrationClient,
    kind: OperationKind,
    operation_id: str,
    payload: dict[str, Any],
    callback_url: str | None,
    links: OperationLinks,
) -> None:
    if callback_url:
        # The outbox entry exists before the operation, so no ending can be missed.
        now = utc_now()
        entry = WebhookEntry(
            operation_id=operation_id,
            callback_url=callback_url,
            api_base=links.api_base,
            # Never the caller's function key: the receiver is a third party.
            api_query="",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        store = await blob_store()
        await asyncio.to_thread(
            store.replace_record, webhook_blob_name(operation_id), entry.to_json(), None
        )
    # The output's resultUri is stored in the history: the function key stays out.
    result_uri = links.without_query().result(operation_id)
    await client.start_new(
        kind.orchestrator,
        operation_id,
        build_operation_input(kind, operation_id, payload, result_uri) | webhook_flag(callback_url),
    )
