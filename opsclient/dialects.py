"""Reading status answers: the three dialects, problem details, bodies by content type.

Pure functions over already-read `httpx.Response` objects:

- Durable Functions built-in status: `runtimeStatus`, 202 while running, 200 when done
  (500 for Failed when asked to);
- our operations monitor (Azure API guidelines): `status` + `progress`, 200 while running,
  303 to the result;
- the generic async request-reply pattern: 202 (+ `Location`), then 200/201/204 or a
  302/303 to the resource.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import httpx

from opsclient.errors import (
    AuthenticationFailed,
    HTTPStatusError,
    OperationCanceled,
    OperationFailed,
    OperationGone,
    OperationNotFound,
    OpsClientError,
    ProtocolError,
)
from opsclient.model import Dialect, OperationStatus, Progress, RunState

__all__ = [
    "decode_body",
    "decode_json",
    "error_for_response",
    "interpret_status",
    "outcome_error",
    "redact",
    "resolve_url",
    "status_from_body",
]

_DURABLE_STATES: Final = {
    "Pending": RunState.PENDING,
    "Running": RunState.RUNNING,
    "ContinuedAsNew": RunState.RUNNING,
    "Suspended": RunState.RUNNING,
    "Completed": RunState.SUCCEEDED,
    "Failed": RunState.FAILED,
    "Terminated": RunState.CANCELED,
    "Canceled": RunState.CANCELED,
}

# Lower-cased: monitors in the wild (Azure API guidelines, OpenAPI samples) vary the case.
_MONITOR_STATES: Final = {
    "notstarted": RunState.PENDING,
    "pending": RunState.PENDING,
    "queued": RunState.PENDING,
    "running": RunState.RUNNING,
    "inprogress": RunState.RUNNING,
    "succeeded": RunState.SUCCEEDED,
    "completed": RunState.SUCCEEDED,
    "failed": RunState.FAILED,
    "canceled": RunState.CANCELED,
    "cancelled": RunState.CANCELED,
    "terminated": RunState.CANCELED,
}

_BODY_EXCERPT: Final = 300

# Query parameters that carry secrets: Durable status URLs hold the system key in `code`,
# blob SAS URLs their signature in `sig`. Messages and logs show them masked.
_SECRET_PARAMS: Final = frozenset({"code", "sig", "token", "access_token", "api-key", "apikey"})


def redact(url: str) -> str:
    """`url` fit for messages and logs: secret query values (`code=`, `sig=`...) masked."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return url
    if not any(k.lower() in _SECRET_PARAMS for k in parsed.params):
        return url
    masked = [
        (k, "REDACTED" if k.lower() in _SECRET_PARAMS else v)
        for k, v in parsed.params.multi_items()
    ]
    return str(parsed.copy_with(params=masked))


def resolve_url(base: str, reference: str) -> str:
    """`reference` (e.g. a relative `Location`) made absolute against `base`."""
    return str(httpx.URL(base).join(reference))


def _is_json(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def decode_json(response: httpx.Response, url: str, *, required: bool = False) -> Any:
    """The JSON body, None when empty (unless `required`); malformed JSON is a ProtocolError."""
    content = response.content
    if not content.strip():
        if required:
            raise ProtocolError(
                f"{redact(url)} answered {response.status_code} with an empty body where JSON "
                "was expected",
                url=url,
            )
        return None
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"{redact(url)} answered {response.status_code} with malformed JSON ({exc}); "
            f"body starts: {_excerpt(response)!r}",
            url=url,
        ) from None


def decode_body(response: httpx.Response, url: str) -> Any:
    """A body by its content type: parsed JSON, text for text/*, else bytes."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if _is_json(response):
        return decode_json(response, url)
    if content_type.startswith("text/"):
        return response.text
    return response.content


def _excerpt(response: httpx.Response) -> str:
    try:
        text = response.content.decode("utf-8", errors="replace")
    except httpx.ResponseNotRead:
        return ""
    return text[:_BODY_EXCERPT]


def _status_body(response: httpx.Response, url: str) -> Any:
    # Status bodies are JSON; some servers forget the content type, so sniff a leading brace.
    if _is_json(response) or response.content.lstrip()[:1] in (b"{", b"["):
        return decode_json(response, url)
    return None


def error_for_response(response: httpx.Response, url: str, method: str = "GET") -> HTTPStatusError:
    """An error status turned into the matching typed error, with the problem details."""
    code = response.status_code
    problem: dict[str, Any] = {"status": code, "title": response.reason_phrase or "error"}
    try:
        body = decode_json(response, url) if response.content.strip() else None
    except ProtocolError:
        body = None
    if isinstance(body, dict):
        # Problem details, or an Azure-style {"error": {"code", "message"}} envelope.
        if isinstance(body.get("error"), dict) and "title" not in body:
            inner = body["error"]
            problem.update({"title": inner.get("code", problem["title"])})
            if inner.get("message"):
                problem["detail"] = inner["message"]
        else:
            problem.update(body)
    elif response.content.strip():
        problem["detail"] = _excerpt(response)
    detail = problem.get("detail") or problem.get("title")
    message = f"{method} {redact(url)} answered {code}: {detail}"
    if isinstance(problem.get("errors"), list | dict):
        message += f" ({json.dumps(problem['errors'], default=str)[:_BODY_EXCERPT]})"
    error_type = {
        401: AuthenticationFailed,
        403: AuthenticationFailed,
        404: OperationNotFound,
        410: OperationGone,
    }.get(code, HTTPStatusError)
    return error_type(
        message,
        status_code=code,
        problem=problem,
        body=_excerpt(response),
        method=method,
        url=url,
    )


def interpret_status(response: httpx.Response, url: str) -> OperationStatus:
    """One status answer read in whichever dialect it speaks; error statuses raise."""
    code = response.status_code
    location = response.headers.get("location")
    if code >= 400:
        body = None
        if code == 500:
            # Durable answers a Failed instance with 500 when asked to
            # (returnInternalServerErrorOnFailure); anything else is a plain error.
            try:
                body = _status_body(response, url)
            except ProtocolError:
                body = None
        if isinstance(body, dict) and "runtimeStatus" in body:
            return status_from_body(body, url, http_status=code, location=location)
        raise error_for_response(response, url)
    body = _status_body(response, url) if code != 204 else None
    if isinstance(body, dict) and (
        "runtimeStatus" in body or str(body.get("status", "")).lower() in _MONITOR_STATES
    ):
        return status_from_body(body, url, http_status=code, location=location)
    return _generic_status(response, url, body)


def status_from_body(
    body: Mapping[str, Any], url: str, *, http_status: int = 200, location: str | None = None
) -> OperationStatus:
    """A Durable (`runtimeStatus`) or monitor (`status`) status object read on its own.

    Also used for the items of a list answer. Raises ProtocolError for anything else.
    """
    if "runtimeStatus" in body:
        return _durable_status(http_status, url, body)
    if str(body.get("status", "")).lower() in _MONITOR_STATES:
        return _monitor_status(http_status, location, url, body)
    raise ProtocolError(
        f"{redact(url)}: expected an operation status with `status` or `runtimeStatus`, got keys "
        f"{sorted(body)[:10]}",
        url=url,
    )


def _durable_status(http_status: int, url: str, body: Mapping[str, Any]) -> OperationStatus:
    runtime_status = body.get("runtimeStatus")
    state = _DURABLE_STATES.get(str(runtime_status))
    if state is None:
        raise ProtocolError(
            f"{redact(url)} reports an unknown runtimeStatus {runtime_status!r}", url=url
        )
    output = body.get("output")
    error = None
    if state is RunState.FAILED:
        error = {"title": "Orchestration failed", "detail": _failure_text(output)}
    return OperationStatus(
        state=state,
        dialect=Dialect.DURABLE,
        url=url,
        id=body.get("instanceId"),
        kind=body.get("name"),
        runtime_status=str(runtime_status),
        progress=_progress_from(body.get("customStatus")),
        custom_status=body.get("customStatus"),
        output=output,
        has_output=state is RunState.SUCCEEDED,
        error=error,
        payload=body,
        http_status=http_status,
    )


def _failure_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        return str(output.get("message") or output.get("detail") or json.dumps(output))
    return "the orchestration failed without an output" if output is None else str(output)


def _monitor_status(
    http_status: int, location: str | None, url: str, body: Mapping[str, Any]
) -> OperationStatus:
    state = _MONITOR_STATES[str(body["status"]).lower()]
    result_url = None
    if http_status in (302, 303) and location:
        result_url = resolve_url(url, location)
    for key in ("resultUri", "resultUrl", "resourceLocation"):
        if result_url is None and isinstance(body.get(key), str):
            result_url = resolve_url(url, body[key])
    error = body.get("error")
    if state is RunState.FAILED and not isinstance(error, dict):
        error = {"title": "Operation failed", "detail": str(error or "no details given")}
    return OperationStatus(
        state=state,
        dialect=Dialect.MONITOR,
        url=url,
        id=body.get("id"),
        kind=body.get("kind"),
        progress=_progress_from(body.get("progress"))
        or _progress_from({"percentComplete": body.get("percentComplete")}),
        output=body.get("result"),
        has_output="result" in body and state is RunState.SUCCEEDED,
        error=error if isinstance(error, dict) else None,
        result_url=result_url,
        payload=body,
        http_status=http_status,
    )


def _generic_status(response: httpx.Response, url: str, body: Any) -> OperationStatus:
    code = response.status_code
    location = response.headers.get("location")
    if code == 202:
        return OperationStatus(
            state=RunState.RUNNING,
            dialect=Dialect.GENERIC,
            url=url,
            progress=_progress_from(body) if isinstance(body, dict) else None,
            payload=body,
            http_status=code,
        )
    if code in (302, 303):
        if not location:
            raise ProtocolError(f"{redact(url)} answered {code} without a Location header", url=url)
        return OperationStatus(
            state=RunState.SUCCEEDED,
            dialect=Dialect.GENERIC,
            url=url,
            result_url=resolve_url(url, location),
            payload=body,
            http_status=code,
        )
    if code in (200, 201, 204):
        output = None if code == 204 else decode_body(response, url)
        return OperationStatus(
            state=RunState.SUCCEEDED,
            dialect=Dialect.GENERIC,
            url=url,
            output=output,
            has_output=code != 204 or location is None,
            result_url=resolve_url(url, location) if code == 201 and location else None,
            payload=body,
            http_status=code,
        )
    raise ProtocolError(
        f"{redact(url)} answered {code}, which no supported status protocol uses "
        "(expected 200, 201, 202, 204, 302 or 303)",
        url=url,
    )


def _progress_from(value: Any) -> Progress | None:
    """Progress from a monitor `progress` object or a Durable `customStatus`, if it has any."""
    if not isinstance(value, dict):
        return None
    nested = value.get("progress")
    if isinstance(nested, dict):
        return _progress_from(nested)
    if _number(nested) is not None:
        value = {**value, "fraction": nested}
    fraction = _number(value.get("fraction"))
    if fraction is None and (percent := _number(value.get("percentComplete"))) is not None:
        fraction = percent / 100
    if fraction is None:
        done = _number(value.get("done", value.get("completed")))
        total = _number(value.get("total"))
        if done is not None and total:
            fraction = done / total
    message = value.get("message")
    if fraction is None and not isinstance(message, str):
        return None
    if fraction is not None:
        fraction = max(0.0, min(1.0, fraction))
    return Progress(fraction, message if isinstance(message, str) else None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def outcome_error(status: OperationStatus) -> OpsClientError | None:
    """The error a finished-but-not-succeeded status turns into, or None on success."""
    name = f"operation {status.id}" if status.id else f"the operation at {redact(status.url)}"
    if status.state is RunState.FAILED:
        error = status.error or {}
        detail = error.get("detail") or error.get("title") or "no details given"
        return OperationFailed(f"{name} failed: {detail}", status, error)
    if status.state is RunState.CANCELED:
        how = "terminated" if status.runtime_status == "Terminated" else "canceled"
        reason = f": {status.output}" if isinstance(status.output, str) and status.output else ""
        return OperationCanceled(f"{name} was {how}{reason}", status)
    return None
