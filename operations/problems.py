"""RFC 9457 problem details, the one shape every error of the API leaves in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from operations.errors import FieldProblem

__all__ = [
    "PROBLEM_JSON",
    "problem",
    "problem_body",
    "problem_code",
    "problem_type",
    "validation_problem",
]

PROBLEM_JSON = "application/problem+json"
_TYPE_PREFIX = "urn:durable-ops:problem:"

_TITLES: dict[int, str] = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def problem_type(slug: str) -> str:
    """The `type` URI of one of our problem kinds, e.g. `invalid-input`."""
    return _TYPE_PREFIX + slug


def problem_body(
    status: int, slug: str, detail: str, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A problem-details object (also used for a Failed operation's `error`). `message`
    repeats `detail` for clients that read errors the JavaScript way (`error.message`)."""
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    body["message"] = detail
    # An Azure-style `code` beside `message`: azure-core's HttpResponseError reads both
    # from a top-level error object ("(OperationExpired) ..." rather than "(None) ...").
    body.setdefault("code", problem_code(slug))
    return body


def problem_code(slug: str) -> str:
    """The Azure-style error code of a problem kind: `operation-expired` -> `OperationExpired`."""
    return "".join(part.capitalize() for part in slug.split("-"))


def problem(
    status: int,
    slug: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> func.HttpResponse:
    """An `application/problem+json` response."""
    body = problem_body(status, slug, detail, title, **extra)
    return func.HttpResponse(
        json.dumps(body),
        status_code=status,
        headers={"Content-Type": PROBLEM_JSON, **(headers or {})},
    )


def validation_problem(problems: list[FieldProblem]) -> func.HttpResponse:
    """400 naming each bad field (RFC 9457 section 3 style `errors` member)."""
    names = ", ".join(p.field or "body" for p in problems)
    return problem(
        400,
        "invalid-input",
        f"The request body is invalid ({names}); see `errors` for each field.",
        title="Invalid input",
        errors=[{"field": p.field, "pointer": p.pointer, "detail": p.detail} for p in problems],
    )
