"""GET /api/operations/{id}: the status monitor."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from operations.handlers.common import find_operation, json_response, retry_after, status_of
from operations.monitor import TERMINAL_STATES, OperationLinks, OperationState

__all__ = ["get_operation"]


async def get_operation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """The status monitor: 200 (+Retry-After while in flight), 303 to the result."""
    found = await find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = OperationLinks.from_request_url(req.url)
    body = status_of(status, kind, links)
    state = OperationState(body["status"])
    if state is OperationState.SUCCEEDED:
        if (req.params.get("redirect") or "").lower() != "false":
            return json_response(body, 303, {"Location": body["resultUri"]})
        return json_response(body)
    if state in TERMINAL_STATES:
        return json_response(body)
    return json_response(body, 200, {"Retry-After": retry_after()})
