"""GET /api/operations/{id} (the status monitor) and GET /api/operations/{id}/status (the
status resource).

Two URLs for two kinds of client (docs/operations.md, "Compatibility"):

- The monitor speaks the generic async request-reply pattern: 200 + Retry-After while the
  operation runs, then 303 to the result; an operation that ended without a result is an
  error status with problem details (422 Failed, 409 Canceled), so a client that only
  looks at status codes still stops and reports why.
- The status resource speaks the Microsoft REST API guidelines' operation resource, which
  azure-core pollers read (Operation-Location): always 200 with `status`, never a redirect.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from operations.handlers.common import (
    find_operation,
    json_response,
    request_links,
    retry_after,
    status_of,
)
from operations.monitor import TERMINAL_STATES, OperationState, ended_problem
from operations.problems import PROBLEM_JSON, problem

__all__ = ["get_operation", "get_operation_status", "status_method_not_allowed"]


def _status_answer(body: dict[str, Any]) -> func.HttpResponse:
    """200 with the status body; Retry-After exactly while the operation is in flight."""
    if OperationState(body["status"]) in TERMINAL_STATES:
        return json_response(body)
    return json_response(body, 200, {"Retry-After": retry_after()})


async def _status_body(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> dict[str, Any] | func.HttpResponse:
    found = await find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    return status_of(status, kind, request_links(req))


async def get_operation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """The status monitor: 200 (+Retry-After) in flight, 303 to the result, 422 Failed,
    409 Canceled; `?redirect=false` answers 200 with the status body in every state."""
    body = await _status_body(req, client, operation_id)
    if isinstance(body, func.HttpResponse):
        return body
    if (req.params.get("redirect") or "").lower() == "false":
        return _status_answer(body)
    if OperationState(body["status"]) is OperationState.SUCCEEDED:
        return json_response(body, 303, {"Location": body["resultUri"]})
    ended = ended_problem(body)
    if ended is not None:
        return json_response(ended, ended["status"], {"Content-Type": PROBLEM_JSON})
    return _status_answer(body)


async def get_operation_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """The status resource: 200 with the status body in every state (Retry-After while
    in flight); 404 unknown, 410 expired."""
    body = await _status_body(req, client, operation_id)
    if isinstance(body, func.HttpResponse):
        return body
    return _status_answer(body)


def status_method_not_allowed(req: func.HttpRequest) -> func.HttpResponse:
    """405 for anything but GET on the status resource (answered by the app, so it is the
    same problem on every host)."""
    return problem(
        405,
        "method-not-allowed",
        f"{req.method.upper()} is not allowed on the status resource; use GET.",
        headers={"Allow": "GET"},
    )
