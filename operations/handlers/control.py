"""Changing a running operation: DELETE (cancel) and POST .../approve."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from operations.errors import InputValidationError
from operations.handlers.common import (
    bad_request,
    find_operation,
    json_response,
    request_links,
    retry_after,
    status_of,
)
from operations.monitor import TERMINAL_STATES, OperationState, operation_state
from operations.problems import problem, validation_problem
from operations.requests import BadRequest, parse_json_body, read_header
from operations.settings import get_int
from operations.validation import BooleanField, InputSchema, StringField
from operations.webhook_delivery import announce_cancel

__all__ = ["APPROVE_EVENT", "approve_operation", "cancel_operation"]

APPROVE_EVENT = "approve"
APPROVE_SCHEMA = InputSchema(
    (
        BooleanField("approved", description="The decision."),
        StringField("by", max_length=200, description="Who decided."),
    )
)


async def cancel_operation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """Terminate a running operation (it then reads Canceled); 409 once it has ended."""
    found = await find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = request_links(req)
    body = status_of(status, kind, links)
    state = OperationState(body["status"])
    if state in TERMINAL_STATES:
        return _ended_problem(operation_id, state, "there is nothing to cancel")
    await announce_cancel(operation_id)  # before: a terminated orchestrator runs no last step
    try:
        await client.terminate(operation_id, "canceled by the client (DELETE /api/operations/{id})")
    except Exception:
        # See _ended_meanwhile: it ended between the check above and the terminate.
        ended = await _ended_meanwhile(client, operation_id, "there is nothing to cancel")
        if ended is None:
            raise
        return ended
    return json_response(
        body, 202, {"Location": links.operation(operation_id), "Retry-After": retry_after()}
    )


async def approve_operation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """Validate `{approved, by}` and raise the `approve` event."""
    try:
        body = parse_json_body(
            req.get_body(),
            read_header(req.headers, "Content-Type"),
            get_int("OPS_MAX_REQUEST_BYTES"),
        )
        decision = APPROVE_SCHEMA.validate(body)
    except BadRequest as error:
        return bad_request(error)
    except InputValidationError as error:
        return validation_problem(error.problems)
    found = await find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = request_links(req)
    current = status_of(status, kind, links)
    if kind.name != "approval":
        return problem(
            409,
            "not-an-approval",
            f"Operation {operation_id} is a {kind.name} operation; only approval operations "
            "take an approve event.",
        )
    if OperationState(current["status"]) in TERMINAL_STATES:
        return _ended_problem(operation_id, OperationState(current["status"]), _TOO_LATE)
    try:
        await client.raise_event(operation_id, APPROVE_EVENT, decision)
    except Exception:
        ended = await _ended_meanwhile(client, operation_id, _TOO_LATE)
        if ended is None:
            raise
        return ended
    return json_response(
        current, 202, {"Location": links.operation(operation_id), "Retry-After": retry_after()}
    )


_TOO_LATE = "the decision came too late"


def _ended_problem(operation_id: str, state: OperationState, consequence: str) -> func.HttpResponse:
    return problem(
        409,
        "operation-ended",
        f"Operation {operation_id} already ended as {state}; {consequence}.",
        operationStatus=str(state),
    )


async def _ended_meanwhile(
    client: df.DurableOrchestrationClient, operation_id: str, consequence: str
) -> func.HttpResponse | None:
    """The answer for a raise or terminate the runtime refused because the operation ended
    after we read its status (a timer fired, another client canceled): 409 if it has ended,
    404/410 if it is gone; None when it is still running, so the failure was something else.

    The durable client raises a bare Exception for every refusal (410 Gone included), so
    re-reading the status is the only way to tell this race from a real failure.
    """
    found = await find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, _ = found
    runtime = status.runtime_status.value if status.runtime_status is not None else None
    state = operation_state(runtime)
    if state not in TERMINAL_STATES:
        return None
    return _ended_problem(operation_id, state, consequence)
