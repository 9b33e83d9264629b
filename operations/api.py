"""The HTTP API under /api/operations (see docs/operations.md and docs/openapi.yaml).

    POST   /api/operations/{kind}          start (202 + Location + Retry-After)
    GET    /api/operations/{id}            status monitor (200; 303 to the result; 422/409)
    GET    /api/operations/{id}/status     status resource (always 200 while it exists)
    DELETE /api/operations/{id}            cancel (202; 409 once it has ended)
    GET    /api/operations/{id}/result     the result from Blob storage (ETag, 304)
    POST   /api/operations/{id}/approve    the `approve` event of an approval operation
    GET    /api/operations                 list with continuation

This module only declares the routes; each resource's handler is in `operations.handlers`.
Item routes share one template (`operations/{name}`) and dispatch on the method, so the
Functions host never has to pick between two templates that match the same path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import AzureError

from operations.errors import StorageConfigurationError
from operations.handlers.common import bad_request
from operations.handlers.control import approve_operation, cancel_operation
from operations.handlers.listing import list_operations
from operations.handlers.result import get_result
from operations.handlers.start import start_operation
from operations.handlers.status import (
    get_operation,
    get_operation_status,
    status_method_not_allowed,
)
from operations.problems import problem
from operations.requests import BadRequest

__all__ = ["bp"]

log = logging.getLogger(__name__)

bp = df.Blueprint()


async def _answer(handling: Awaitable[func.HttpResponse]) -> func.HttpResponse:
    """Run a handler; failures of what it depends on leave as problem+json, not a bare 500."""
    try:
        return await handling
    except BadRequest as error:
        # A reader deep in a handler (a header, a query value) refused the request.
        return bad_request(error)
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


# Every method is routed here so the 405 and its `Allow: GET` come from the app, the same
# on every host (a host's own 405 would list the methods declared here instead).
@bp.route(
    route="operations/{name}/status",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
)
@bp.durable_client_input(client_name="client")
async def operation_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """The status resource of operation `name` (GET; any other method is a 405 problem)."""
    if req.method.upper() != "GET":
        return status_method_not_allowed(req)
    return await _answer(get_operation_status(req, client, req.route_params.get("name", "")))


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
