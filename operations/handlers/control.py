"""Changing a running operation: DELETE (cancel) and POST .../approve."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from operations.errors import InputValidationError
from operations.handlers.common import (
    bad_request,
    find_operation,
    json_response,
    retry_after,
    status_of,
)
from operations.monitor import TERMINAL_STATES, OperationLinks, OperationState
from operations.problems import problem, validation_problem
from operations.requests import BadRequest, parse_json_body
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
    links = OperationLinks.from_request_url(req.url)
    body = status_of(status, kind, links)
    state = OperationState(body["status"])
    if state in TERMINAL_STATES:
        return problem(
            409,
            "operation-ended",
            f"Operation {operation_id} already ended as {state}; there is nothing to cancel.",
            operationStatus=str(state),
        )
    await announce_cancel(operation_id)  # before: a terminated orchestrator runs no last step
    await client.terminate(operation_id, "canceled by the client (DELETE /api/operations/{id})")
    return json_response(
        body, 202, {"Location": links.operation(operation_id), "Retry-After": retry_after()}
    )


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
        return bad_request(error)
    except InputValidationError as error:
        return validation_problem(error.problems)
    found = await find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = OperationLinks.from_request_url(req.url)
    current = status_of(status, kind, links)
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
    return json_response(
        current, 202, {"Location": links.operation(operation_id), "Retry-After": retry_after()}
    )
