"""The HTTP API under /api/operations (see docs/operations.md and docs/openapi.yaml).

    POST   /api/operations/{kind}          start (202 + Location + Retry-After)
    GET    /api/operations/{id}            status monitor (200, or 303 to the result)
    DELETE /api/operations/{id}            cancel (202; 409 once it has ended)
    GET    /api/operations/{id}/result     the result from Blob storage (ETag, 304)
    POST   /api/operations/{id}/approve    the `approve` event of an approval operation
    GET    /api/operations                 list with continuation

Item routes share one template (`operations/{name}`) and dispatch on the method, so the
Functions host never has to pick between two templates that match the same path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import AzureError

from operations.blobstore import BlobStore, tombstone_blob_name, webhook_blob_name
from operations.errors import (
    FieldProblem,
    IdempotencyConflictError,
    InputValidationError,
    StorageConfigurationError,
    UnknownKindError,
)
from operations.idempotency import IdempotencyStore, check_key, request_fingerprint
from operations.kinds import OperationKind, all_kinds, find_kind_by_orchestrator, get_kind
from operations.kinds import operation_input as build_operation_input
from operations.monitor import (
    TERMINAL_STATES,
    OperationLinks,
    OperationState,
    is_valid_operation_id,
    operation_state,
    runtime_statuses_for,
    status_body,
)
from operations.problems import problem, validation_problem
from operations.requests import (
    BadRequest,
    choose_media_type,
    encode_continuation,
    etag_matches,
    parse_json_body,
    parse_list_query,
)
from operations.settings import get_int, get_setting
from operations.validation import BooleanField, InputSchema, StringField, check_url
from operations.webhooks import WebhookEntry

__all__ = [
    "StartRequest",
    "approve_operation",
    "bp",
    "cancel_operation",
    "get_operation",
    "get_result",
    "list_operations",
    "read_start_request",
    "start_operation",
]

log = logging.getLogger(__name__)

bp = df.Blueprint()

APPROVE_EVENT = "approve"
APPROVE_SCHEMA = InputSchema(
    (
        BooleanField("approved", description="The decision."),
        StringField("by", max_length=200, description="Who decided."),
    )
)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _bad_request(error: BadRequest) -> func.HttpResponse:
    return problem(error.status, error.slug, error.detail, **error.extra)


def _retry_after() -> str:
    return str(get_int("OPS_RETRY_AFTER_SECONDS"))


def _now() -> datetime:
    return datetime.now(UTC)


async def _blobs() -> BlobStore:
    return await asyncio.to_thread(BlobStore.from_settings)


async def _gone_or_missing(operation_id: str) -> func.HttpResponse:
    """404, or 410 when expiry left a tombstone for this id."""
    if is_valid_operation_id(operation_id):
        store = await _blobs()
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


async def _find_operation(
    client: df.DurableOrchestrationClient, operation_id: str
) -> tuple[Any, OperationKind] | func.HttpResponse:
    """The instance status and kind, or the 404/410 response to send instead."""
    if not is_valid_operation_id(operation_id):
        return await _gone_or_missing(operation_id)
    status = await client.get_status(operation_id)
    kind = find_kind_by_orchestrator(status.name) if status else None
    if not status or kind is None:
        return await _gone_or_missing(operation_id)
    return status, kind


def _status_of(status: Any, kind: OperationKind, links: OperationLinks) -> dict[str, Any]:
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


async def _answer(handling: Awaitable[func.HttpResponse]) -> func.HttpResponse:
    """Run a handler; failures of what it depends on leave as problem+json, not a bare 500."""
    try:
        return await handling
    except StorageConfigurationError as error:
        return problem(500, "storage-not-configured", f"The app cannot reach storage: {error}.")
    except AzureError as error:
        log.warning("blob storage failed: %s", error)
        return problem(
            503,
            "storage-unavailable",
            "Blob storage did not answer; retry later (a start with the same "
            "Idempotency-Key is safe to retry).",
            headers={"Retry-After": "5"},
        )
    except Exception as error:
        # The durable client raises bare Exception for any unexpected runtime answer.
        log.exception("request failed")
        return problem(
            500,
            "internal-error",
            f"The request failed inside the app ({type(error).__name__}); retry later.",
        )


# ------------------------------------------------------------------------------ routes


@bp.route(route="operations/{name}", methods=["GET", "POST", "DELETE"])
@bp.durable_client_input(client_name="client")
async def operation_item(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """POST starts an operation of kind `name`; GET/DELETE read/cancel operation `name`."""
    name = req.route_params.get("name", "")
    method = req.method.upper()
    if method == "POST":
        return await _answer(start_operation(req, client, name))
    if method == "DELETE":
        return await _answer(cancel_operation(req, client, name))
    return await _answer(get_operation(req, client, name))


@bp.route(route="operations/{name}/result", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def operation_result(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """The result of a Succeeded operation, from Blob storage."""
    return await _answer(get_result(req, client, req.route_params.get("name", "")))


@bp.route(route="operations/{name}/approve", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def operation_approve(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Send the `approve` event to a waiting approval operation."""
    return await _answer(approve_operation(req, client, req.route_params.get("name", "")))


@bp.route(route="operations", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def operation_list(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """List operations, newest first, with continuation."""
    return await _answer(list_operations(req, client))


# ------------------------------------------------------------------------------ start


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
        req.get_body(), req.headers.get("Content-Type"), get_int("OPS_MAX_REQUEST_BYTES")
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
        return _bad_request(error)
    except InputValidationError as error:
        return validation_problem(error.problems)
    payload, callback_url = request.payload, request.callback_url

    links = OperationLinks.from_request_url(req.url)
    operation_id = uuid.uuid4().hex
    key = req.headers.get("Idempotency-Key")
    replayed = False
    if key is not None:
        reason = check_key(key)
        if reason:
            return problem(400, "invalid-idempotency-key", reason)
        store = IdempotencyStore(
            await _blobs(), timedelta(seconds=get_int("OPS_IDEMPOTENCY_TTL_SECONDS"))
        )
        try:
            claim = await asyncio.to_thread(
                store.claim,
                key,
                fingerprint=request_fingerprint(kind.name, request.body),
                kind=kind.name,
                operation_id=operation_id,
                payload={"input": payload, "callbackUrl": callback_url},
                now=_now(),
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
    response_body["resultUri"] = links.result(operation_id)
    response_body["kind"] = kind.name
    headers = {
        "Location": response_body["statusQueryGetUri"],
        "Operation-Location": response_body["operationUri"],
        "Retry-After": _retry_after(),
    }
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json(response_body, 202, headers)


async def _has_tombstone(operation_id: str) -> bool:
    store = await _blobs()
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
        now = _now()
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
        store = await _blobs()
        await asyncio.to_thread(
            store.replace_record, webhook_blob_name(operation_id), entry.to_json(), None
        )
    await client.start_new(
        kind.orchestrator, operation_id, build_operation_input(kind, operation_id, payload)
    )


# ------------------------------------------------------------------------------ status


async def get_operation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """The status monitor: 200 (+Retry-After while in flight), 303 to the result."""
    found = await _find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = OperationLinks.from_request_url(req.url)
    body = _status_of(status, kind, links)
    state = OperationState(body["status"])
    if state is OperationState.SUCCEEDED:
        if (req.params.get("redirect") or "").lower() != "false":
            return _json(body, 303, {"Location": body["resultUri"]})
        return _json(body)
    if state in TERMINAL_STATES:
        return _json(body)
    return _json(body, 200, {"Retry-After": _retry_after()})


async def cancel_operation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """Terminate a running operation (it then reads Canceled); 409 once it has ended."""
    found = await _find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = OperationLinks.from_request_url(req.url)
    body = _status_of(status, kind, links)
    state = OperationState(body["status"])
    if state in TERMINAL_STATES:
        return problem(
            409,
            "operation-ended",
            f"Operation {operation_id} already ended as {state}; there is nothing to cancel.",
            operationStatus=str(state),
        )
    await client.terminate(operation_id, "canceled by the client (DELETE /api/operations/{id})")
    return _json(
        body, 202, {"Location": links.operation(operation_id), "Retry-After": _retry_after()}
    )


# ------------------------------------------------------------------------------ result


async def get_result(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """The result blob in the format Accept asks for, with ETag; 304 on If-None-Match."""
    found = await _find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = OperationLinks.from_request_url(req.url)
    monitor = links.operation(operation_id)
    state = operation_state(status.runtime_status.value if status.runtime_status else None)
    if state is not OperationState.SUCCEEDED:
        headers = {"Link": f'<{monitor}>; rel="monitor"'}
        if state not in TERMINAL_STATES:
            headers["Retry-After"] = _retry_after()
            detail = f"Operation {operation_id} is {state}; its result is not ready yet."
        else:
            detail = f"Operation {operation_id} ended as {state}; it has no result."
        return problem(404, "result-not-ready", detail, headers=headers, operationStatus=str(state))
    output = status.output if isinstance(status.output, dict) else {}
    results: dict[str, str] = dict(output.get("results") or {})
    available = [media for media in kind.result_types if media in results] or list(results)
    media_type = choose_media_type(req.headers.get("Accept"), available)
    if media_type is None:
        return problem(
            406,
            "not-acceptable",
            f"The result is available as {', '.join(available)}; ask for one of them in Accept.",
            available=available,
        )
    store = await _blobs()
    blob_name = results[media_type]
    if_none_match = req.headers.get("If-None-Match")
    if if_none_match:
        etag = await asyncio.to_thread(store.result_etag, blob_name)
        if etag is not None and etag_matches(if_none_match, etag):
            return func.HttpResponse(status_code=304, headers={"ETag": etag, "Vary": "Accept"})
    blob = await asyncio.to_thread(store.open_result, blob_name)
    if blob is None:
        return problem(
            404,
            "result-missing",
            f"Operation {operation_id} succeeded but its result blob {blob_name} is missing.",
            headers={"Link": f'<{monitor}>; rel="monitor"'},
        )
    # The v1 Python worker buffers HTTP bodies; the blob is read chunk by chunk into it.
    data = await asyncio.to_thread(lambda: b"".join(blob.chunks))
    content_type = media_type + ("; charset=utf-8" if media_type == "text/csv" else "")
    return func.HttpResponse(
        data,
        status_code=200,
        headers={
            "Content-Type": content_type,
            "ETag": blob.etag,
            "Content-Length": str(len(data)),
            "Vary": "Accept",
            "Link": f'<{monitor}>; rel="monitor"',
        },
    )


# ------------------------------------------------------------------------------ approve


async def approve_operation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """Validate `{approved, by}` and raise the `approve` event."""
    try:
        body = parse_json_body(
            req.get_body(), req.headers.get("Content-Type"), get_int("OPS_MAX_REQUEST_BYTES")
        )
        decision = APPROVE_SCHEMA.validate(body)
    except BadRequest as error:
        return _bad_request(error)
    except InputValidationError as error:
        return validation_problem(error.problems)
    found = await _find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = OperationLinks.from_request_url(req.url)
    current = _status_of(status, kind, links)
    if kind.name != "approval":
        return problem(
            409,
            "not-an-approval",
            f"Operation {operation_id} is a {kind.name} operation; only approval operations "
            "take an approve event.",
        )
    if OperationState(current["status"]) in TERMINAL_STATES:
        return problem(
            409,
            "operation-ended",
            f"Operation {operation_id} already ended as {current['status']}.",
            operationStatus=current["status"],
        )
    await client.raise_event(operation_id, APPROVE_EVENT, decision)
    return _json(
        current, 202, {"Location": links.operation(operation_id), "Retry-After": _retry_after()}
    )


# ------------------------------------------------------------------------------ list


async def list_operations(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """`{value: [...], nextLink}` newest first; filters status, kind; page size top."""
    try:
        query = parse_list_query(dict(req.params))
    except BadRequest as error:
        return _bad_request(error)
    runtime: list[df.OrchestrationRuntimeStatus] = []
    for state in query.states:
        runtime.extend(df.OrchestrationRuntimeStatus(r) for r in runtime_statuses_for(state))
    statuses = await client.get_status_by(runtime_status=runtime or None)
    links = OperationLinks.from_request_url(req.url)
    items: list[dict[str, Any]] = []
    for status in statuses:
        kind = find_kind_by_orchestrator(status.name)
        if kind is None or (query.kind and kind.name != query.kind):
            continue
        items.append(_status_of(status, kind, links))
    items.sort(key=lambda item: (item["createdAt"] or "", item["id"]), reverse=True)
    if query.after is not None:
        items = [i for i in items if (i["createdAt"] or "", i["id"]) < query.after]
    page = items[: query.top]
    body: dict[str, Any] = {"value": page, "nextLink": None}
    if len(items) > query.top:
        last = page[-1]
        params = {k: v for k, v in req.params.items() if k not in ("continuationToken", "code")}
        params["continuationToken"] = encode_continuation(last["createdAt"] or "", last["id"])
        body["nextLink"] = links.collection(params)
    return _json(body)
