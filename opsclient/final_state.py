"""Where the result of a long-running operation is, once its status says Succeeded.

Pure functions, no I/O. Two questions answered from an initial answer (the 202 of any API):

- `operation_from_response`: is this a long-running operation, and where to poll it?
  `Operation-Location`, then `Azure-AsyncOperation`, then `Location`, then the Durable
  Functions `statusQueryGetUri` of the body (as azure-core tries OperationResourcePolling,
  then LocationPolling).
- `final_get_url`: after an `Operation-Location`/`Azure-AsyncOperation` poll succeeded,
  which URL holds the result. These are azure-core's rules
  (`OperationResourcePolling.get_final_get_url`, and azure-mgmt-core's
  `AzureAsyncOperationPolling`), in their order:

  1. final-state-via `location` and the initial answer had a `Location`: that URL;
  2. final-state-via `azure-async-operation` or `operation-location` on a POST: no final
     GET, the final status body is the result;
  3. `resourceLocation` in the final status body: that URL;
  4. PUT or PATCH: the original request URL;
  5. POST with a `Location` in the initial answer: that URL;
  6. otherwise no final GET: the final status body is the result.

  `original-uri` (ARM/TypeSpec `@useFinalStateVia("original-uri")`, which azure-core for
  JavaScript reads but the Python one leaves to the defaults) means the original request
  URL, except for a DELETE, which has nothing left to GET.

A poll of `Location` or of a Durable status URL has no final GET (azure-core's
LocationPolling): the last answer (a 200 body, a 303 to the resource, a Durable `output`)
is the result, as `opsclient.dialects` already reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import httpx

from opsclient.dialects import decode_json, error_for_response, redact, resolve_url
from opsclient.errors import ConfigurationError, ProtocolError
from opsclient.model import Operation, OperationStatus, RunState
from opsclient.polling import parse_retry_after

__all__ = [
    "FinalState",
    "FinalStateVia",
    "apply_final_state",
    "final_get_url",
    "monitor_final_state",
    "operation_from_response",
]

# The status-monitor headers, in azure-core's order of preference.
_MONITOR_HEADERS: Final = ("operation-location", "azure-asyncoperation")
_WRITE_METHODS: Final = frozenset({"PUT", "PATCH"})


class FinalStateVia(StrEnum):
    """The OpenAPI `x-ms-long-running-operation-options.final-state-via` values."""

    AZURE_ASYNC_OPERATION = "azure-async-operation"
    LOCATION = "location"
    ORIGINAL_URI = "original-uri"
    OPERATION_LOCATION = "operation-location"

    @classmethod
    def parse(cls, value: str | FinalStateVia | None) -> FinalStateVia | None:
        """`value` as a FinalStateVia (case-insensitive), None passed through."""
        if value is None or isinstance(value, FinalStateVia):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            known = ", ".join(v.value for v in cls)
            raise ConfigurationError(
                f"final_state_via must be one of {known}, got {value!r}"
            ) from None


@dataclass(frozen=True, slots=True)
class FinalState:
    """What the initial request and answer say about where the final result will be.

    Kept on the `Operation` (and in continuation tokens) because the rules need the
    original method and URL, which the status answers no longer show.
    """

    method: str
    request_url: str
    location_url: str | None = None
    via: FinalStateVia | None = None


def final_get_url(state: FinalState, status: OperationStatus) -> str | None:
    """The URL holding the result of a succeeded operation, or None when the final status
    body is the result (azure-core's `get_final_get_url`, see the module docstring)."""
    method = state.method.upper()
    if state.via is FinalStateVia.LOCATION and state.location_url:
        return state.location_url
    if (
        state.via in (FinalStateVia.AZURE_ASYNC_OPERATION, FinalStateVia.OPERATION_LOCATION)
        and method == "POST"
    ):
        return None
    if state.via is FinalStateVia.ORIGINAL_URI and method != "DELETE":
        return state.request_url
    body = status.payload
    if isinstance(body, dict):
        resource_location = body.get("resourceLocation")
        if isinstance(resource_location, str) and resource_location:
            return resolve_url(status.url, resource_location)
    if method in _WRITE_METHODS:
        return state.request_url
    if method == "POST" and state.location_url:
        return state.location_url
    return None


def apply_final_state(
    status: OperationStatus, state: FinalState | None, *, final_url: str | None = None
) -> OperationStatus:
    """The final status pointing at its result the way the rules say.

    `final_url` (the caller's own knowledge) wins over the rules. With neither, the status
    is returned unchanged. When the rules say "no final GET", the status body itself becomes
    the inline result, as azure-core returns the deserialized final status.
    """
    if status.state is not RunState.SUCCEEDED:
        return status
    if final_url is not None:
        return replace(status, result_url=final_url)
    if state is None:
        return status
    url = final_get_url(state, status)
    if url is not None:
        return replace(status, result_url=url)
    inline = status.output if status.has_output else status.payload
    return replace(status, result_url=None, output=inline, has_output=True)


def operation_from_response(
    response: httpx.Response,
    *,
    final_state_via: FinalStateVia | str | None = None,
    now: datetime,
) -> Operation | None:
    """The `Operation` a 2xx answer starts, or None when there is nothing to poll.

    A 202 is polled at its status-monitor header, else its `Location`, else the Durable
    `statusQueryGetUri` of its body; a 200/201 only when it names a status monitor (ARM
    answers a PUT with 201 + Azure-AsyncOperation). Anything else (a plain 200, a 202 that
    names no URL) is the result itself, as azure-core's StatusCheckPolling says. Error
    statuses raise the matching opsclient error. The answer's body must have been read.
    """
    request = response.request
    url = str(request.url)
    code = response.status_code
    if code >= 400:
        raise error_for_response(response, url, request.method)
    if not 200 <= code < 300:
        raise ProtocolError(
            f"{request.method} {redact(url)} answered {code}: not a long-running operation's "
            "start (expected 2xx)",
            method=request.method,
            url=url,
        )
    monitor = next((response.headers[h] for h in _MONITOR_HEADERS if h in response.headers), "")
    location = response.headers.get("location") or ""
    body = _json_object(response, url)
    status_query = body.get("statusQueryGetUri")
    if code != 202 and not monitor:
        return None
    poll = monitor or location or (status_query if isinstance(status_query, str) else "")
    if not poll:
        return None

    def link(key: str) -> str | None:
        value = body.get(key)
        return resolve_url(url, value) if isinstance(value, str) and value else None

    final_state = None
    if monitor:
        final_state = FinalState(
            method=request.method.upper(),
            request_url=url,
            location_url=resolve_url(url, location) if location else None,
            via=FinalStateVia.parse(final_state_via),
        )
    identifier = body.get("id", body.get("instanceId"))
    return Operation(
        status_url=resolve_url(url, poll),
        id=identifier if isinstance(identifier, str) else None,
        result_url=link("resultUri"),
        # Kept verbatim: the {eventName}/{text} placeholders must not be percent-encoded.
        send_event_url=_template(body.get("sendEventPostUri")),
        terminate_url=_template(body.get("terminatePostUri")),
        retry_after=parse_retry_after(
            response.headers.get("retry-after"),
            now=now,
            server_date=response.headers.get("date"),
        ),
        payload=body,
        final_state=final_state,
    )


def monitor_final_state(
    operation: Operation, response: httpx.Response, request_method: str, request_url: str
) -> Operation:
    """`operation` (from `start`) with the final-state rules, when it polls a status monitor
    named by a header rather than our own monitor (whose 303 already leads to the result)."""
    header_urls = {
        resolve_url(request_url, response.headers[h])
        for h in _MONITOR_HEADERS
        if h in response.headers
    }
    if operation.poll_url not in header_urls or operation.final_state is not None:
        return operation
    location = response.headers.get("location")
    state = FinalState(
        method=request_method.upper(),
        request_url=request_url,
        location_url=resolve_url(request_url, location) if location else None,
    )
    return replace(operation, final_state=state)


def _template(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return value
    return None


def _json_object(response: httpx.Response, url: str) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    looks_json = content_type == "application/json" or content_type.endswith("+json")
    if not looks_json and response.content.lstrip()[:1] != b"{":
        return {}
    try:
        body = decode_json(response, url)
    except ProtocolError:
        return {}  # an initial answer's body is informative only; the poll decides
    return body if isinstance(body, dict) else {}
