"""The server's account of a failure, read from whichever common shape it comes in.

Shapes read, in this order of preference:

- `{"error": {"code", "message", "details": [...], "innererror": {...}}}`: ARM, the
  Microsoft REST API guidelines, azure-core, Google (`google.rpc.Status`);
- `{"error": "text"}`;
- problem details (RFC 9457): `detail`, else `title` (our API adds `message` = `detail`);
- a top-level `message` (generic JavaScript error parsers), `error_description` (OAuth);
- `{"errors": [{"message" | "detail"}, ...]}` (validation lists);
- a plain text body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["failure_details", "failure_message"]

_MAX_TEXT: Final = 500
_MAX_EXTRAS: Final = 3
# Members that say what went wrong, when a body carries them beside unrelated ones.
_ERROR_MEMBERS: Final = (
    "type",
    "title",
    "detail",
    "message",
    "code",
    "instance",
    "errors",
    "error_description",
)
_TEXT_MEMBERS: Final = ("detail", "message", "error_description", "title")
# Codes that add nothing to "operation X failed: ..." (ours is "OperationFailed").
_BLAND_CODES: Final = frozenset({"operationfailed", "failed", "failure", "error"})


def failure_details(body: Any) -> dict[str, Any] | None:
    """The failure a body describes, as a dict that always holds `message` and `detail`.

    The server's own members are kept (`code`, `details`, problem `type`...); `message` and
    `detail` are filled in with the same text when the shape lacks one of them, so
    `error.get("detail")` reads alike for every shape. None when the body says nothing.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        plain = body.strip()[:_MAX_TEXT]
        return {"message": plain, "detail": plain} if plain else None
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    details: dict[str, Any]
    if _is_problem(body):
        # Problem details are the error already, even with an `error` member inside (our
        # monitor's 422 carries both): keep them whole, `status` and `operationStatus` too.
        details = dict(body)
    elif isinstance(error, Mapping):
        details = dict(error)
        if _text(error) is None and _text(body) is not None:
            # {"error": {"code": "X"}, "detail": "..."}: the words are beside the object.
            details.update({k: body[k] for k in _TEXT_MEMBERS if k in body})
    elif isinstance(error, str) and error.strip():
        details = {k: body[k] for k in _ERROR_MEMBERS if k in body}
        details["error"] = error
        details.setdefault("message", error.strip())
    else:
        details = {k: body[k] for k in _ERROR_MEMBERS if k in body}
    text = failure_message(details)
    if text is None:
        return None
    if not _nonempty(details.get("message")):
        details["message"] = text
    if not _nonempty(details.get("detail")):
        details["detail"] = details["message"]
    return details


def failure_message(error: Mapping[str, Any] | None) -> str | None:
    """One line a person can act on: the error's text, its code, and nested reasons.

    ARM and Google put the real cause in `details` (or `innererror`) under a general
    message ("At least one resource deployment operation failed"), so the first few
    nested messages are added in parentheses.
    """
    if not error:
        return None
    text = _text(error)
    nested = _nested_messages(error)
    if text is None:
        if not nested:
            return None
        text, nested = nested[0], nested[1:]
    code = error.get("code")
    if isinstance(code, str) and code and code not in text and code.lower() not in _BLAND_CODES:
        text = f"{code}: {text}"
    extras = [m for m in nested if m not in text][:_MAX_EXTRAS]
    if extras:
        text += f" ({'; '.join(extras)})"
    return text[:_MAX_TEXT]


def _text(error: Mapping[str, Any]) -> str | None:
    for key in _TEXT_MEMBERS:
        if _nonempty(value := error.get(key)):
            return str(value).strip()
    inner = error.get("error")
    if isinstance(inner, str) and inner.strip():
        return inner.strip()
    return None


def _nested_messages(error: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for key in ("details", "errors"):
        items = error.get(key)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, Mapping) and (message := failure_message(item)):
                    found.append(message)
                elif isinstance(item, str) and item.strip():
                    found.append(item.strip())
    inner = error.get("innererror")
    while isinstance(inner, Mapping):
        # azure-core's innererror nests more specific errors, each maybe with a message.
        if (message := _text(inner)) is not None:
            found.append(message)
        inner = inner.get("innererror")
    return found


def _is_problem(body: Mapping[str, Any]) -> bool:
    # RFC 9457: `status` there is the HTTP code (an integer), never a state word. A bare
    # `type` is not enough: status bodies use it for the kind of job.
    return "title" in body or isinstance(body.get("status"), int)


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
