"""GET /api/operations: the list, page by page through the task hub's own continuation.

Each page of ours is read from the task hub's list (operations.instance_pages) with the
status filter passed down; instances that are not operations, or not of the asked kind,
are skipped, so a page may take several hub pages. Each hub request asks only for as many
instances as the page still lacks, so the hub's continuation token is always exactly
where the page ended and nothing is skipped or repeated between pages.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import azure.durable_functions as df
import azure.functions as func

from operations.errors import TaskHubUnavailableError
from operations.handlers.common import bad_request, json_response, request_links, status_of
from operations.instance_pages import read_instance_page
from operations.kinds import find_kind_by_orchestrator
from operations.monitor import OperationLinks, runtime_statuses_for
from operations.problems import problem
from operations.requests import BadRequest, ListQuery, encode_continuation, parse_list_query

__all__ = ["list_operations"]

log = logging.getLogger(__name__)

# Hub pages read for one page of ours at most: a kind filter over a hub full of other
# instances answers a short page (with nextLink) rather than one slow request.
MAX_HUB_PAGES_PER_PAGE: Final = 20


async def list_operations(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """`{value: [...], nextLink}`; filters status, kind; page size top; follow nextLink."""
    try:
        query = parse_list_query(dict(req.params))
    except BadRequest as error:
        return bad_request(error)
    links = request_links(req)
    try:
        items, hub_token = await _read_page(client, query, links)
    except TaskHubUnavailableError as error:
        log.warning("listing operations failed: %s", error)
        return problem(
            503,
            "task-hub-unavailable",
            "The task hub did not answer the list request; retry later.",
            headers={"Retry-After": "5"},
        )
    body: dict[str, Any] = {"value": items, "nextLink": None}
    if hub_token is not None:
        params = {k: v for k, v in req.params.items() if k not in ("continuationToken", "code")}
        params["continuationToken"] = encode_continuation(hub_token)
        body["nextLink"] = links.collection(params)
    return json_response(body)


async def _read_page(
    client: df.DurableOrchestrationClient, query: ListQuery, links: OperationLinks
) -> tuple[list[dict[str, Any]], str | None]:
    runtime = [r for state in query.states for r in runtime_statuses_for(state)]
    items: list[dict[str, Any]] = []
    token = query.continuation
    for _ in range(MAX_HUB_PAGES_PER_PAGE):
        page = await read_instance_page(
            client, top=query.top - len(items), continuation=token, runtime_status=runtime
        )
        for status in page.instances:
            kind = find_kind_by_orchestrator(status.name)
            if kind is not None and (query.kind is None or kind.name == query.kind):
                items.append(status_of(status, kind, links))
        if page.continuation is None or page.continuation == token:
            return items, None
        token = page.continuation
        if len(items) >= query.top:
            break
    return items, token
