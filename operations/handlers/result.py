"""GET /api/operations/{id}/result: the result blob, negotiated and revalidated, sent inline
or, when large or asked for with `?redirect=true`, by a 302 to a short-lived read-only SAS
URL of the blob (the rules are in `operations.result_delivery`)."""

from __future__ import annotations

import asyncio

import azure.durable_functions as df
import azure.functions as func

from operations.handlers.common import (
    bad_request,
    blob_store,
    find_operation,
    request_links,
    retry_after,
)
from operations.monitor import TERMINAL_STATES, OperationState, operation_state
from operations.problems import problem
from operations.requests import BadRequest, choose_media_type, etag_matches
from operations.result_delivery import (
    REDIRECT_PARAM,
    REDIRECT_STATUS,
    Delivery,
    choose_delivery,
    parse_redirect_choice,
    result_link_lifetime,
    served_content_type,
)
from operations.settings import get_int

__all__ = ["get_result"]


async def get_result(
    req: func.HttpRequest, client: df.DurableOrchestrationClient, operation_id: str
) -> func.HttpResponse:
    """The result blob in the format Accept asks for, with ETag; 304 on If-None-Match;
    a 302 to the blob in storage when it is large or `?redirect=true`."""
    try:
        asked = parse_redirect_choice(req.params.get(REDIRECT_PARAM))
    except BadRequest as error:
        return bad_request(error)
    found = await find_operation(client, operation_id)
    if isinstance(found, func.HttpResponse):
        return found
    status, kind = found
    links = request_links(req)
    monitor_link = {"Link": f'<{links.operation(operation_id)}>; rel="monitor"'}
    state = operation_state(status.runtime_status.value if status.runtime_status else None)
    if state is not OperationState.SUCCEEDED:
        headers = dict(monitor_link)
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
    # Metadata first: revalidation and the inline-or-redirect choice need no bytes, so a
    # large result never enters the app's memory.
    info = await asyncio.to_thread(store.result_info, blob_name)
    if info is None:
        return _result_missing(operation_id, blob_name, monitor_link)
    if etag_matches(req.headers.get("If-None-Match"), info.etag):
        return func.HttpResponse(status_code=304, headers={"ETag": info.etag, "Vary": "Accept"})
    try:
        delivery = choose_delivery(
            info.size,
            asked,
            redirect_above=get_int("OPS_RESULT_REDIRECT_BYTES"),
            inline_max=get_int("OPS_RESULT_INLINE_MAX_BYTES"),
        )
    except BadRequest as error:
        return bad_request(error)
    content_type = served_content_type(media_type)
    if delivery is Delivery.REDIRECT:
        link = await asyncio.to_thread(
            store.result_read_url,
            blob_name,
            lifetime=result_link_lifetime(),
            # Only when storage would answer otherwise (CSV is stored without a charset).
            content_type=None if info.content_type == content_type else content_type,
        )
        return func.HttpResponse(
            status_code=REDIRECT_STATUS,
            headers={
                "Location": link,
                # The link is a credential that expires: no cache may keep or reuse it.
                "Cache-Control": "no-store",
                "Vary": "Accept",
                **monitor_link,
            },
        )
    blob = await asyncio.to_thread(store.open_result, blob_name)
    if blob is None:
        return _result_missing(operation_id, blob_name, monitor_link)
    # The v1 Python worker buffers HTTP bodies; the blob is read chunk by chunk into it.
    data = await asyncio.to_thread(lambda: b"".join(blob.chunks))
    return func.HttpResponse(
        data,
        status_code=200,
        headers={
            "Content-Type": content_type,
            "ETag": blob.etag,
            "Content-Length": str(len(data)),
            "Vary": "Accept",
            **monitor_link,
        },
    )


def _result_missing(
    operation_id: str, blob_name: str, monitor_link: dict[str, str]
) -> func.HttpResponse:
    return problem(
        404,
        "result-missing",
        f"Operation {operation_id} succeeded but its result blob {blob_name} is missing.",
        headers=monitor_link,
    )
