"""Reading status answers in every dialect: status words, problem details, bodies.

Pure functions over already-read `httpx.Response` objects. A status answer is read from
its HTTP status and, when it has one, the state its body names:

- Durable Functions built-in status: `runtimeStatus`, 202 while running, 200 when done
  (500 for Failed when asked to);
- a `status` word: our operations monitor (303 to the result; a Failed operation answers
  422 problem+json with `operationStatus`, a Canceled one 409), the Microsoft REST API
  guidelines / azure-core status resource, ARM `Azure-AsyncOperation`, seed-style APIs;
- an ARM resource read while it provisions: `properties.provisioningState`;
- a Google-style long-running operation: `{"name", "done", "response" | "error"}`;
- the generic async request-reply pattern: 202 (+ `Location`), then 200/201/204 or a
  302/303 to the resource.

Words are read through `opsclient.vocabulary`; a word it does not know keeps the operation
Running (`status_recognized` False), never done. A 4xx answer of a status URL (other than
401/403, 404, 408/429, 410) is the operation's failure, told there the way the async
request-reply pattern keeps it. Relative links resolve against the URL that answered.
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
    OperationError,
    OperationFailed,
    OperationGone,
    OperationNotFound,
    ProtocolError,
)
from opsclient.model import Dialect, OperationStatus, Progress, RunState
from opsclient.server_errors import failure_details, failure_message
from opsclient.vocabulary import state_for_word

__all__ = [
    "decode_body",
    "decode_json",
    "error_for_response",
    "interpret_status",
    "operation_error_for_response",
    "outcome_error",
    "redact",
    "resolve_url",
    "response_url",
    "status_from_body",
]

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


# Error answers of a status URL that speak about the request, not the operation: the
# caller's credentials (401/403), the URL (404), a transient condition (408/429) or an
# expired operation (410). Every other 4xx there is the operation's own failure.
_NOT_VERDICTS: Final = frozenset({401, 403, 404, 408, 410, 429})
_ENDED_BADLY: Final = (RunState.FAILED, RunState.CANCELED)
_GOOGLE_MEMBERS: Final = frozenset({"name", "metadata", "done", "response", "error", "@type"})
_GRPC_CANCELLED: Final = 1  # google.rpc.Code.CANCELLED: how a canceled operation ends
_NO_DETAILS: Final = {"message": "no details given", "detail": "no details given"}


def response_url(response: httpx.Response, fallback: str) -> str:
    """The URL that gave `response` (the last one after redirects): what its links resolve
    against. `fallback` when the response was built without a request."""
    try:
        return str(response.url)
    except RuntimeError:
        return fallback


def error_for_response(response: httpx.Response, url: str, method: str = "GET") -> HTTPStatusError:
    """An error status turned into the matching typed error, with the problem details.

    The message carries the server's own words from any common error shape (see
    `opsclient.server_errors`).
    """
    code = response.status_code
    problem: dict[str, Any] = {"status": code, "title": response.reason_phrase or "error"}
    body = _lenient_body(response, url)
    details = failure_details(body)
    if isinstance(body, dict):
        if isinstance(body.get("error"), Mapping) and "title" not in body:
            # An ARM / REST guidelines {"error": {"code", "message"}} envelope.
            problem["title"] = str(body["error"].get("code") or problem["title"])
            problem["error"] = body["error"]
        else:
            problem.update(body)
            if not isinstance(problem.get("status"), int):
                problem["status"] = code  # a `status` word is not the HTTP status
    if details is not None and not problem.get("detail"):
        problem["detail"] = failure_message(details)
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


def operation_error_for_response(response: httpx.Response, url: str) -> OperationError | None:
    """OperationFailed/OperationCanceled when an error answer of any URL (a result URL,
    say) names the operation's end (`operationStatus`, a `status` word); else None."""
    if response.status_code < 400 or response.status_code in _NOT_VERDICTS:
        return None
    body = _lenient_body(response, url)
    if not isinstance(body, Mapping) or _stated_end(body) is None:
        return None
    return outcome_error(_failure_status(response, url, body))


def interpret_status(response: httpx.Response, url: str) -> OperationStatus:
    """One answer of a status URL, read in whichever dialect it speaks.

    Failed and Canceled are returned as statuses (also when told by a 4xx answer); errors
    about the request itself (401/403, 404, 410, 5xx...) raise.
    """
    code = response.status_code
    if code >= 400:
        return _error_status(response, url)
    body = _status_body(response, url) if code != 204 else None
    base = response_url(response, url)
    location = response.headers.get("location")
    if isinstance(body, Mapping) and _dialect_of(body) is not None:
        return status_from_body(body, url, http_status=code, location=location, base=base)
    return _generic_status(response, url, base, body)


def status_from_body(
    body: Mapping[str, Any],
    url: str,
    *,
    http_status: int = 200,
    location: str | None = None,
    base: str | None = None,
) -> OperationStatus:
    """A status object read on its own, in any dialect (also the items of a list answer).

    `base` is the URL relative links resolve against (default `url`). Raises
    ProtocolError for a body that names no state at all.
    """
    base = base or url
    dialect = _dialect_of(body)
    if dialect is Dialect.DURABLE:
        return _durable_status(http_status, url, body)
    if dialect is Dialect.GOOGLE:
        return _google_status(http_status, url, body)
    if dialect is Dialect.MONITOR:
        return _worded_status(
            http_status, location, url, base, body, str(body["status"]), Dialect.MONITOR
        )
    if dialect is Dialect.ARM:
        word = str(_provisioning_state(body))
        return _worded_status(http_status, location, url, base, body, word, Dialect.ARM)
    raise ProtocolError(
        f"{redact(url)}: expected an operation status (`status`, `runtimeStatus`, "
        f"`done` or `provisioningState`), got keys {sorted(body)[:10]}",
        url=url,
    )


def _dialect_of(body: Mapping[str, Any]) -> Dialect | None:
    if "runtimeStatus" in body:
        return Dialect.DURABLE
    if (
        isinstance(body.get("done"), bool)
        and isinstance(body.get("name"), str)
        and set(body) <= _GOOGLE_MEMBERS
    ):
        # Only the exact shape: a resource that merely has `name` and `done` (a to-do item)
        # is a result, not an operation.
        return Dialect.GOOGLE
    if _is_word(body.get("status")):
        return Dialect.MONITOR
    if _is_word(_provisioning_state(body)):
        return Dialect.ARM
    return None


def _is_word(value: Any) -> bool:
    # problem+json's `status` is the HTTP code: an integer (or digits) is never a state word.
    return isinstance(value, str) and bool(value.strip()) and not value.strip().isdigit()


def _provisioning_state(body: Mapping[str, Any]) -> Any:
    properties = body.get("properties")
    if isinstance(properties, Mapping) and "provisioningState" in properties:
        return properties["provisioningState"]
    return body.get("provisioningState")


def _word_state(word: Any, http_status: int) -> tuple[RunState, bool]:
    """The state a status word means on an answer of `http_status`, and whether the word
    was known. Unknown words mean Running: only a known word or a redirect says done."""
    state = state_for_word(word)
    recognized = state is not None
    if state is None:
        state = RunState.RUNNING
    if http_status == 202 and state is RunState.SUCCEEDED:
        state = RunState.RUNNING  # 202 Accepted says "not done", whatever the body claims
    if http_status in (302, 303) and state not in _ENDED_BADLY:
        state, recognized = RunState.SUCCEEDED, True  # the redirect to the result is the verdict
    return state, recognized


def _durable_status(http_status: int, url: str, body: Mapping[str, Any]) -> OperationStatus:
    runtime_status = body.get("runtimeStatus")
    state, recognized = _word_state(runtime_status, http_status)
    output = body.get("output")
    error = None
    if state is RunState.FAILED:
        text = _failure_text(output)
        error = {"title": "Orchestration failed", "detail": text, "message": text}
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
        reported_status=str(runtime_status),
        status_recognized=recognized,
    )


def _failure_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        return failure_message(failure_details(output)) or json.dumps(output)
    return "the orchestration failed without an output" if output is None else str(output)


def _worded_status(
    http_status: int,
    location: str | None,
    url: str,
    base: str,
    body: Mapping[str, Any],
    word: str,
    dialect: Dialect,
) -> OperationStatus:
    """A body whose state is a word: `status` (monitor, REST guidelines, ARM
    Azure-AsyncOperation, seed-style) or an ARM resource's `provisioningState`."""
    state, recognized = _word_state(word, http_status)
    result_url = None
    if http_status in (302, 303) and location:
        result_url = resolve_url(base, location)
    for key in ("resultUri", "resultUrl", "resourceLocation"):
        if result_url is None and isinstance(body.get(key), str) and body[key]:
            result_url = resolve_url(base, body[key])
    error = None
    if state is RunState.FAILED:
        named = "provisioningState" if dialect is Dialect.ARM else "status"
        said = f"{named} is {word!r}, with no details"
        error = failure_details(body) or {"message": said, "detail": said}
    elif state is RunState.CANCELED:
        error = failure_details(body)
    output: Any
    if dialect is Dialect.ARM:
        # The resource itself is the result once it is provisioned.
        output, has_output = body, state is RunState.SUCCEEDED and result_url is None
    else:
        output, has_output = body.get("result"), "result" in body
    return OperationStatus(
        state=state,
        dialect=dialect,
        url=url,
        id=_text_or_none(body.get("id")),
        kind=_text_or_none(body.get("kind")),
        progress=_progress_from(body.get("progress"))
        or _progress_from({"percentComplete": body.get("percentComplete")}),
        output=output,
        has_output=has_output and state is RunState.SUCCEEDED,
        error=error,
        result_url=result_url,
        payload=body,
        http_status=http_status,
        reported_status=word,
        status_recognized=recognized,
    )


def _google_status(http_status: int, url: str, body: Mapping[str, Any]) -> OperationStatus:
    """A Google-style long-running operation (AIP-151): `done` false is running; done with
    `error` failed (canceled when its code is CANCELLED), done with `response` succeeded."""
    done = bool(body["done"]) and http_status != 202
    error = body.get("error")
    state = RunState.RUNNING
    details = None
    if done and error is not None:
        details = failure_details({"error": error}) or dict(_NO_DETAILS)
        code = error.get("code") if isinstance(error, Mapping) else None
        cancelled = code == _GRPC_CANCELLED or str(code).upper() == "CANCELLED"
        state = RunState.CANCELED if cancelled else RunState.FAILED
    elif done:
        state = RunState.SUCCEEDED
    return OperationStatus(
        state=state,
        dialect=Dialect.GOOGLE,
        url=url,
        id=_text_or_none(body.get("name")),
        progress=_progress_from(body.get("metadata")),
        output=body.get("response"),
        has_output=state is RunState.SUCCEEDED,
        error=details,
        payload=body,
        http_status=http_status,
        reported_status="done" if done else "running",
    )


def _generic_status(response: httpx.Response, url: str, base: str, body: Any) -> OperationStatus:
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
            result_url=resolve_url(base, location),
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
            result_url=resolve_url(base, location) if code == 201 and location else None,
            payload=body,
            http_status=code,
        )
    raise ProtocolError(
        f"{redact(url)} answered {code}, which no supported status protocol uses "
        "(expected 200, 201, 202, 204, 302 or 303)",
        url=url,
    )


def _error_status(response: httpx.Response, url: str) -> OperationStatus:
    """An error answer of a status URL: the operation's failure, or raised as an error."""
    code = response.status_code
    body = _lenient_body(response, url)
    mapping: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    ended = _stated_end(mapping)
    if "runtimeStatus" in mapping and (code == 500 or ended is not None):
        # Durable answers a Failed instance with 500 when asked to
        # (returnInternalServerErrorOnFailure).
        return _durable_status(code, url, mapping)
    if code in _NOT_VERDICTS or (code >= 500 and ended is None):
        raise error_for_response(response, url)
    return _failure_status(response, url, body)


def _failure_status(response: httpx.Response, url: str, body: Any) -> OperationStatus:
    mapping: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    code = response.status_code
    words = _stated_words(mapping)
    word = words[0] if words else None
    state = RunState.CANCELED if _stated_end(mapping) is RunState.CANCELED else RunState.FAILED
    details = failure_details(body)
    if details is None:
        text = f"the status URL answered {code} {response.reason_phrase}".strip()
        details = {"message": text, "detail": text}
    return OperationStatus(
        state=state,
        dialect=Dialect.MONITOR if word is not None else Dialect.GENERIC,
        url=url,
        id=_text_or_none(mapping.get("id")),
        kind=_text_or_none(mapping.get("kind")),
        error=details,
        payload=body,
        http_status=code,
        reported_status=word,
    )


def _stated_words(body: Mapping[str, Any]) -> list[str]:
    # Our monitor's problem names the state in `operationStatus` (its `status` is the code).
    keys = ("operationStatus", "status", "runtimeStatus")
    return [str(body[k]) for k in keys if _is_word(body.get(k))]


def _stated_end(body: Mapping[str, Any]) -> RunState | None:
    """Failed or Canceled when an error body names that end, else None."""
    for word in _stated_words(body):
        state = state_for_word(word)
        if state in _ENDED_BADLY:
            return state
    return None


def _lenient_body(response: httpx.Response, url: str) -> Any:
    """An error body as JSON when it is JSON, else its text; None when empty or unread."""
    try:
        content = response.content
    except httpx.ResponseNotRead:
        return None  # a streamed answer: its status alone has to do
    if not content.strip():
        return None
    try:
        body = _status_body(response, url)
    except ProtocolError:
        body = None
    return body if body is not None else _excerpt(response)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _progress_from(value: Any) -> Progress | None:
    """Progress from a monitor `progress` object, a Durable `customStatus` or Google
    `metadata`, if it has any."""
    if not isinstance(value, dict):
        return None
    nested = value.get("progress")
    if isinstance(nested, dict):
        return _progress_from(nested)
    if _number(nested) is not None:
        value = {**value, "fraction": nested}
    fraction = _number(value.get("fraction"))
    for key in ("percentComplete", "progressPercent"):
        if fraction is None and (percent := _number(value.get(key))) is not None:
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


def outcome_error(status: OperationStatus) -> OperationError | None:
    """The error a finished-but-not-succeeded status turns into, or None on success."""
    name = f"operation {status.id}" if status.id else f"the operation at {redact(status.url)}"
    if status.state is RunState.FAILED:
        error = status.error or {}
        detail = failure_message(error) or "no details given"
        return OperationFailed(f"{name} failed: {detail}", status, error)
    if status.state is RunState.CANCELED:
        how = "terminated" if status.runtime_status == "Terminated" else "canceled"
        said = status.output if isinstance(status.output, str) else failure_message(status.error)
        reason = f": {said}" if said else ""
        return OperationCanceled(f"{name} was {how}{reason}", status)
    return None
