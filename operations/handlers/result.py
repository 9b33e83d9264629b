"""GET /api/operations/{id}/result: the result blob, negotiated and revalidated."""

from __future__ import annotations

import asyncio

import azure.durable_functions as df
import azure.functions as func

from operations.handlers.common import blob_store, find_operation, retry_after
from operations.monitor import TERMINAL_STATES, OperationLinks, OperationState, operation_state
from operations.problems import problem
from operations.requests import choose_media_type, etag_matches

__all__ = ["get_result"]


async def get_result(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """The result blob in the format Accept asks for, with ETag; 304 on If-None-Match."""
    found = await find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = OperationLinks.from_request_url(req.url)
    monitor = links.operation(operation_id)
    state = operation_state(status.runtime_status.value if status.runtime_status else None)
    if state is not OperationState.SUCCEEDED:
        headers = {"Link": f'<{monitor}>; rel="monitor"'}
        if state not in TERMINAL_STATES:
            headers["Retry-After"] = retry_after()
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
    store = await blob_store()
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
