"""What to send and how to read the answers, without sending anything.

`ClientCore` builds a `RequestSpec` for each call and turns the answers into models or
typed errors (status answers are read by `opsclient.dialects`, retries decided by
`opsclient.retries`). The sync and async clients only move bytes between these functions
and the network.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

import httpx

from opsclient.dialects import (
    decode_body,
    decode_json,
    error_for_response,
    operation_error_for_response,
    outcome_error,
    redact,
    resolve_url,
    response_url,
    status_from_body,
)
from opsclient.errors import (
    ConfigurationError,
    ConnectionFailed,
    OperationAlreadyFinished,
    OperationError,
    ProtocolError,
    RequestError,
    TransientStatusError,
)
from opsclient.model import Operation, OperationStatus
from opsclient.polling import parse_retry_after
from opsclient.retries import TRANSIENT_STATUSES

__all__ = [
    "ClientCore",
    "Inline",
    "OperationRef",
    "RequestSpec",
    "accepting",
    "describe",
    "idempotency_header",
    "inline_bytes",
]

log = logging.getLogger("opsclient")

OperationRef = Operation | OperationStatus | str
"""Anything that names an operation: a handle, a status, a status URL, or an operation id."""

_IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_OPERATIONS_PATH: Final = "api/operations"
# Durable management URLs: .../instances/{id}, optionally followed by an action.
_DURABLE_INSTANCE: Final = re.compile(r"^(?P<prefix>.*/instances/(?P<id>[^/?]+))(?:/.*)?$")
_MONITOR_PATH: Final = re.compile(r"^(?:.*/)?api/operations/(?P<id>[^/]+)/?$")
_MAX_REDIRECTS: Final = 5
_MAX_KEY_LENGTH: Final = 255


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request to send: everything but the credentials, which depend on the moment."""

    method: str
    url: str
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    json_body: Any = None
    has_body: bool = False
    retry_safe: bool = True

    def with_url(self, url: str) -> RequestSpec:
        """The same GET sent to another URL (after a redirect, or the next page)."""
        return RequestSpec("GET", url, headers=self.headers)


@dataclass(frozen=True, slots=True)
class Inline:
    """A result that came inside the status itself (no request needed)."""

    value: Any


def idempotency_header(key: str) -> str:
    """The `Idempotency-Key` value, checked: visible ASCII, no spaces, at most 255 characters.

    Sent verbatim (not as a quoted structured-field string): servers, ours included, compare
    the raw header, so the same key from curl and from opsclient means the same operation.
    """
    if not key or len(key) > _MAX_KEY_LENGTH or any(not 0x20 < ord(ch) < 0x7F for ch in key):
        raise ConfigurationError(
            f"idempotency_key must be 1 to {_MAX_KEY_LENGTH} visible ASCII characters without "
            f"spaces (a UUID is ideal), got {key!r}"
        )
    return key


class ClientCore:
    """Requests and answers of the operations API, for both clients."""

    def __init__(
        self, base_url: str | None, *, function_key: str | None = None, has_token: bool = False
    ) -> None:
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must be an http(s) URL, got {base_url!r}")
        if base_url is None and (function_key or has_token):
            # Credentials go only to base_url's origin; without one there is no safe place.
            raise ConfigurationError(
                "a function key or token needs base_url: they are sent to its origin only"
            )
        self.base_url = base_url.rstrip("/") + "/" if base_url else None
        self.function_key = function_key
        self._origin = _origin(self.base_url) if self.base_url else None

    # -- addressing ------------------------------------------------------------------------

    def api_url(self, *segments: str) -> str:
        """An absolute URL under `{base}/api/operations`."""
        if self.base_url is None:
            raise ConfigurationError("this call needs base_url (e.g. http://127.0.0.1:7071)")
        path = "/".join([_OPERATIONS_PATH, *(quote(s, safe="") for s in segments)])
        return resolve_url(self.base_url, path)

    def as_operation(self, target: OperationRef) -> Operation:
        """Any reference to an operation as an `Operation` handle.

        A string is an operation id only when it has no `/`: a relative URL such as a
        `Location: /v1/reports/42` is resolved against `base_url`, never taken for an id.
        """
        if isinstance(target, Operation):
            return target
        if isinstance(target, OperationStatus):
            handle = self.as_operation(target.url)
            return replace(
                handle,
                id=target.id or handle.id,
                result_url=target.result_url or handle.result_url,
            )
        if not isinstance(target, str) or not target.strip():
            raise ConfigurationError(f"expected an Operation, a status URL or an id: {target!r}")
        if not target.startswith(("http://", "https://")) and _is_relative_url(target):
            if self.base_url is None:
                raise ConfigurationError(
                    f"{target!r} is a relative URL: resolving it needs base_url "
                    "(or pass the absolute URL)"
                )
            target = resolve_url(self.base_url, target)
        if target.startswith(("http://", "https://")):
            path = httpx.URL(target).path
            if ours := _MONITOR_PATH.match(path):
                # Our monitor by URL: it is also where cancel goes and next to the result.
                monitor = str(httpx.URL(target).copy_with(query=None))
                return Operation(
                    status_url=target,
                    id=ours["id"],
                    operation_url=target,
                    result_url=monitor.rstrip("/") + "/result",
                )
            match = _DURABLE_INSTANCE.match(path)
            return Operation(status_url=target, id=match["id"] if match else None)
        monitor = self.api_url(target)
        return Operation(
            status_url=monitor, id=target, operation_url=monitor, result_url=monitor + "/result"
        )

    def sends_credentials(self, url: str) -> bool:
        """Whether credentials go with a request to `url`: only to the API's own origin.

        Status URLs and result redirects may point elsewhere (a blob SAS URL, another
        service); a key or token must not leak there.
        """
        return self._origin is not None and _origin(url) == self._origin

    def credential_headers(self, url: str, token: str | None) -> dict[str, str]:
        """The key and token headers due to a request to `url`."""
        if not self.sends_credentials(url):
            return {}
        headers: dict[str, str] = {}
        if self.function_key and "code" not in httpx.URL(url).params:
            headers["x-functions-key"] = self.function_key
        if token:
            headers["authorization"] = f"Bearer {token}"
        return headers

    # -- start -----------------------------------------------------------------------------

    def start_request(
        self,
        kind: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> RequestSpec:
        """POST {base}/api/operations/{kind}, always with an Idempotency-Key.

        The key is what makes the POST safe to retry: the server answers a replay with the
        operation it already started.
        """
        if not kind or "/" in kind:
            raise ConfigurationError(f"kind must be a non-empty name without '/', got {kind!r}")
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        body = input
        if callback_url is not None:
            # The API takes the webhook beside the kind's own fields, in the JSON body.
            if not isinstance(input, Mapping):
                raise ConfigurationError("callback_url needs the input to be a JSON object")
            body = {**input, "callbackUrl": callback_url}
        return RequestSpec(
            "POST",
            self.api_url(kind),
            headers={"idempotency-key": idempotency_header(key)},
            json_body=body,
            has_body=True,
            retry_safe=True,
        )

    def read_start(self, response: httpx.Response, spec: RequestSpec, now: datetime) -> Operation:
        """The 202 answer to a start, as an `Operation`."""
        code = response.status_code
        if code >= 400:
            raise error_for_response(response, spec.url, spec.method)
        if code not in (200, 201, 202):
            raise ProtocolError(
                f"POST {redact(spec.url)} answered {code}; a start answers 202 Accepted",
                method=spec.method,
                url=spec.url,
            )
        body = decode_json(response, spec.url)
        location = response.headers.get("location")
        payload: Mapping[str, Any] = body if isinstance(body, dict) else {}
        # Links are relative to the URL that answered (the last one, after any redirect).
        base = response_url(response, spec.url)

        def link(key: str) -> str | None:
            value = payload.get(key)
            return resolve_url(base, value) if isinstance(value, str) and value else None

        def template(key: str) -> str | None:
            # Kept verbatim: parsing would percent-encode the {eventName}/{text} placeholders.
            value = payload.get(key)
            if not isinstance(value, str) or not value:
                return None
            return value if value.startswith(("http://", "https://")) else link(key)

        status_url = link("statusQueryGetUri") or (
            resolve_url(base, location) if location else None
        )
        # Azure-style APIs name their status monitor in an Operation-Location header (ARM
        # in Azure-AsyncOperation): it reports Failed/Canceled, which Location may not.
        monitor_header = response.headers.get("operation-location") or response.headers.get(
            "azure-asyncoperation"
        )
        operation_url = link("operationUri") or (
            resolve_url(base, monitor_header) if monitor_header else None
        )
        if status_url is None and operation_url is None:
            raise ProtocolError(
                f"POST {redact(spec.url)} answered {code} with neither a Location header nor a "
                "statusQueryGetUri: there is nothing to poll",
                method=spec.method,
                url=spec.url,
            )
        return Operation(
            status_url=status_url or str(operation_url),
            id=payload.get("id") if isinstance(payload.get("id"), str) else None,
            operation_url=operation_url,
            result_url=link("resultUri"),
            send_event_url=template("sendEventPostUri"),
            terminate_url=template("terminatePostUri"),
            retry_after=parse_retry_after(
                response.headers.get("retry-after"),
                now=now,
                server_date=response.headers.get("date"),
            ),
            payload=payload,
        )

    # -- status and result -----------------------------------------------------------------

    def status_request(self, url: str) -> RequestSpec:
        """A GET of a status URL."""
        return RequestSpec("GET", url)

    def result_plan(
        self, operation: Operation, status: OperationStatus | None
    ) -> Inline | RequestSpec:
        """Where the result is: inline in `status`, or behind a GET."""
        if status is not None:
            if not status.finished:
                name = status.id or redact(status.url)
                raise OperationError(
                    f"operation {name} has no result yet: it is {status.state.value}", status
                )
            if (failure := outcome_error(status)) is not None:
                raise failure
            if status.result_url:
                return RequestSpec("GET", status.result_url)
            if status.has_output:
                return Inline(status.output)
        if operation.result_url:
            return RequestSpec("GET", operation.result_url)
        raise ProtocolError(
            f"operation {operation.id or redact(operation.status_url)} finished without a result "
            "or a result URL",
            url=operation.status_url,
        )

    def redirect(
        self, response: httpx.Response, spec: RequestSpec, hops: int
    ) -> RequestSpec | None:
        """The next request when a result answer redirects (to a blob, say), else None."""
        if response.status_code not in (301, 302, 303, 307, 308):
            return None
        location = response.headers.get("location")
        if not location:
            raise ProtocolError(
                f"{redact(spec.url)} answered {response.status_code} without a Location header",
                url=spec.url,
            )
        if hops >= _MAX_REDIRECTS:
            raise ProtocolError(
                f"{redact(spec.url)}: more than {_MAX_REDIRECTS} redirects", url=spec.url
            )
        return spec.with_url(resolve_url(response_url(response, spec.url), location))

    def check_result(self, response: httpx.Response, spec: RequestSpec) -> None:
        """Raise when a result answer is an error (e.g. 404 while not ready, 410 expired).

        An error that names the operation's end (our 422 `operationStatus: "Failed"`, 409
        Canceled) raises OperationFailed/OperationCanceled with the server's message.
        """
        if response.status_code >= 400:
            ended = operation_error_for_response(response, spec.url)
            raise ended or error_for_response(response, spec.url, spec.method)
        if response.status_code not in (200, 203):
            raise ProtocolError(
                f"GET {redact(spec.url)} answered {response.status_code} where the result "
                "was expected",
                url=spec.url,
            )

    def read_result(self, response: httpx.Response, spec: RequestSpec) -> Any:
        """A result body: parsed JSON, text or bytes by content type."""
        self.check_result(response, spec)
        return decode_body(response, spec.url)

    # -- control ---------------------------------------------------------------------------

    def cancel_request(self, operation: Operation, reason: str) -> RequestSpec:
        """DELETE the operation (our API), else POST the Durable terminate URL."""
        if operation.operation_url:
            return RequestSpec("DELETE", operation.operation_url)
        url = operation.terminate_url or _durable_action_url(operation.status_url, "terminate")
        if url is None:
            raise ConfigurationError(
                f"no way to cancel {redact(operation.status_url)}: it is neither our "
                "operations API nor a Durable Functions status URL"
            )
        if "{text}" in url:
            # Durable hands out terminatePostUri with a `reason={text}` placeholder.
            return RequestSpec(
                "POST", url.replace("{text}", quote(reason, safe="")), retry_safe=False
            )
        return RequestSpec("POST", url, params={"reason": reason}, retry_safe=False)

    def raise_event_request(self, operation: Operation, name: str, data: Any) -> RequestSpec:
        """POST an external event to the Durable sendEventPostUri."""
        if not name or "/" in name:
            raise ConfigurationError(f"event name must be non-empty without '/', got {name!r}")
        template = operation.send_event_url
        if template and "{eventName}" in template:
            url = template.replace("{eventName}", quote(name, safe=""))
        elif template:
            url = template
        else:
            derived = _durable_action_url(
                operation.status_url, f"raiseEvent/{quote(name, safe='')}"
            )
            if derived is None and operation.id and self.base_url:
                derived = resolve_url(
                    self.base_url,
                    f"runtime/webhooks/durabletask/instances/{quote(operation.id, safe='')}"
                    f"/raiseEvent/{quote(name, safe='')}",
                )
            if derived is None:
                raise ConfigurationError(
                    f"no event URL for {redact(operation.status_url)}: start it with this "
                    "client or pass the Operation holding its sendEventPostUri"
                )
            url = derived
        # Raising an event twice delivers it twice: never retried.
        return RequestSpec("POST", url, json_body=data, has_body=True, retry_safe=False)

    def read_control(self, response: httpx.Response, spec: RequestSpec, action: str) -> None:
        """Accept a cancel/raise-event answer, or raise the matching error."""
        code = response.status_code
        if code in (409, 410):
            generic = error_for_response(response, spec.url, spec.method)
            raise OperationAlreadyFinished(
                f"cannot {action}: the operation already finished ({generic})",
                status_code=code,
                problem=generic.problem,
                body=generic.body,
                method=spec.method,
                url=spec.url,
            )
        if code >= 400:
            raise error_for_response(response, spec.url, spec.method)

    # -- list ------------------------------------------------------------------------------

    def list_request(
        self, *, status: str | None = None, kind: str | None = None, top: int | None = None
    ) -> RequestSpec:
        """GET {base}/api/operations with its filters."""
        params = {
            key: str(value)
            for key, value in (("status", status), ("kind", kind), ("top", top))
            if value is not None
        }
        return RequestSpec("GET", self.api_url(), params=params or None)

    def read_list_page(
        self, response: httpx.Response, spec: RequestSpec
    ) -> tuple[list[OperationStatus], RequestSpec | None]:
        """One page of a list, and the request for the next page (None on the last)."""
        if response.status_code >= 400:
            raise error_for_response(response, spec.url, spec.method)
        body = decode_json(response, spec.url, required=True)
        items: Any = body
        if isinstance(body, dict):
            items = next(
                (body[k] for k in ("value", "operations", "items", "instances") if k in body), None
            )
        if not isinstance(items, list):
            raise ProtocolError(
                f"GET {redact(spec.url)}: expected a list of operations", url=spec.url
            )
        statuses = []
        for item in items:
            if not isinstance(item, dict):
                raise ProtocolError(
                    f"GET {redact(spec.url)}: list item is not an object", url=spec.url
                )
            item_id = item.get("id") or item.get("instanceId")
            url = self.api_url(str(item_id)) if item_id and self.base_url else spec.url
            statuses.append(status_from_body(item, url))
        return statuses, self._next_page(response, spec, body)

    def _next_page(
        self, response: httpx.Response, spec: RequestSpec, body: Any
    ) -> RequestSpec | None:
        if isinstance(body, dict):
            if isinstance(link := body.get("nextLink"), str) and link:
                return RequestSpec("GET", resolve_url(response_url(response, spec.url), link))
            token = body.get("continuationToken") or body.get("continuation")
            if isinstance(token, str) and token:
                params = {**(spec.params or {}), "continuationToken": token}
                return RequestSpec("GET", spec.url, params=params)
        if token := response.headers.get("x-ms-continuation-token"):
            headers = {**spec.headers, "x-ms-continuation-token": token}
            return RequestSpec("GET", spec.url, params=spec.params, headers=headers)
        return None

    # -- transient failures ----------------------------------------------------------------

    def transient_error(
        self, response: httpx.Response, spec: RequestSpec, now: datetime
    ) -> TransientStatusError | None:
        """A 429/502/503/504 as the error stamina retries on, else None."""
        if response.status_code not in TRANSIENT_STATUSES:
            return None
        base = error_for_response(response, spec.url, spec.method)
        error = TransientStatusError(
            str(base),
            status_code=base.status_code,
            problem=base.problem,
            body=base.body,
            method=spec.method,
            url=spec.url,
        )
        error.retry_after = parse_retry_after(
            response.headers.get("retry-after"), now=now, server_date=response.headers.get("date")
        )
        return error

    def translate(self, exc: httpx.HTTPError, spec: RequestSpec) -> RequestError:
        """An httpx error translated at the boundary: httpx exceptions never leave opsclient."""
        reason = str(exc) or type(exc).__name__
        where = f"{spec.method} {redact(spec.url)}"
        if isinstance(exc, httpx.DecodingError):
            return ProtocolError(
                f"{where}: undecodable body: {reason}", method=spec.method, url=spec.url
            )
        return ConnectionFailed(f"{where} failed: {reason}", method=spec.method, url=spec.url)

    def retryable(self, spec: RequestSpec) -> bool:
        """Safe to send twice: idempotent methods, and POSTs carrying an Idempotency-Key."""
        if not spec.retry_safe:
            return False
        return spec.method in _IDEMPOTENT_METHODS or "idempotency-key" in spec.headers


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), port


def _is_relative_url(target: str) -> bool:
    # Operation ids (ours are UUIDs, Durable instance ids too) never hold a `/`; a path does.
    return "/" in target or target.startswith(".")


def _durable_action_url(status_url: str, action: str) -> str | None:
    """`.../instances/{id}/{action}` from a Durable status URL, keeping its query (code=...)."""
    url = httpx.URL(status_url)
    match = _DURABLE_INSTANCE.match(url.path)
    if match is None:
        return None
    path = f"{match['prefix']}/{action}"
    query = {k: v for k, v in url.params.multi_items() if k not in ("showInput", "showHistory")}
    return str(url.copy_with(path=path, query=None).copy_merge_params(query))


def describe(value: Any) -> str:
    """A short JSON-ish rendering for log lines."""
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def accepting(spec: RequestSpec, accept: str | None) -> RequestSpec:
    """`spec` asking for the media type `accept`, when one is given."""
    if accept is None:
        return spec
    return replace(spec, headers={**spec.headers, "accept": accept})


def inline_bytes(value: Any) -> bytes:
    """An inline result as file content: bytes as is, text as UTF-8, anything else as JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, indent=2).encode() + b"\n"
