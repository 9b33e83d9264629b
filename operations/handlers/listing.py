"""GET /api/operations: the list, newest first, with continuation."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from operations.handlers.common import bad_request, json_response, status_of
from operations.kinds import find_kind_by_orchestrator
from operations.monitor import OperationLinks, runtime_statuses_for
from operations.requests import BadRequest, encode_continuation, parse_list_query

__all__ = ["list_operations"]


async def list_operations(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """`{value: [...], nextLink}` newest first; filters status, kind; page size top."""
    try:
        query = parse_list_query(dict(req.params))
    except BadRequest as error:
        return bad_request(error)
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
        items.append(status_of(status, kind, links))
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
    return json_response(body)
