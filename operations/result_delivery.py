"""How GET /api/operations/{id}/result hands out a result: inline, or by redirect to storage.

The valet-key step of the Asynchronous Request-Reply pattern: a result larger than
`OPS_RESULT_REDIRECT_BYTES` is not copied through the app; the answer is a 302 to a
short-lived read-only SAS URL of its blob. A client may choose with `?redirect=`:

    (absent)        by size: redirect above OPS_RESULT_REDIRECT_BYTES
    redirect=true   always redirect
    redirect=false  always inline, up to OPS_RESULT_INLINE_MAX_BYTES (422 above it)

No I/O here, so every rule is unit-tested directly.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from operations.requests import BadRequest
from operations.settings import get_int

__all__ = [
    "REDIRECT_PARAM",
    "REDIRECT_STATUS",
    "Delivery",
    "choose_delivery",
    "parse_redirect_choice",
    "result_link_lifetime",
    "served_content_type",
]

REDIRECT_PARAM = "redirect"
# 302, not 307 or 303: every HTTP client follows a 302 for a GET (axios/follow-redirects,
# fetch/undici, curl -L, azure-core's RedirectPolicy, httpx, requests, Java's
# HttpURLConnection, .NET), and the route only answers GET, so 302 never rewrites a method.
REDIRECT_STATUS = 302
_SHORTEST_LINK = timedelta(seconds=60)
_LONGEST_LINK = timedelta(hours=1)


class Delivery(StrEnum):
    """How one result answer carries the bytes."""

    INLINE = "inline"
    REDIRECT = "redirect"


def parse_redirect_choice(raw: str | None) -> bool | None:
    """The client's `?redirect=` choice: True, False, or None when absent (decide by size).

    Raises BadRequest 400 for any other value, the empty string included.
    """
    if raw is None:
        return None
    choice = {"true": True, "false": False}.get(raw.strip().lower())
    if choice is None:
        detail = f"{raw!r} is not true or false"
        raise BadRequest(
            400,
            "invalid-query",
            f"Bad query parameter {REDIRECT_PARAM}: {detail}. Use redirect=true for a link "
            "to the result in storage, redirect=false for the bytes in this answer, or leave "
            "it out to let the result's size decide.",
            errors=[{"field": REDIRECT_PARAM, "detail": detail}],
        )
    return choice


def choose_delivery(
    size: int, asked: bool | None, *, redirect_above: int, inline_max: int
) -> Delivery:
    """Inline or redirect for a result of `size` bytes.

    Without a choice, results above `redirect_above` redirect, and so does anything above
    `inline_max` (the app never holds more than that, whatever the threshold says). Raises
    BadRequest 422 when the client insists on inline above `inline_max`.
    """
    if asked is True:
        return Delivery.REDIRECT
    if size > inline_max:
        if asked is False:
            raise BadRequest(
                422,
                "result-too-large-inline",
                f"The result is {size} bytes; the app sends at most {inline_max} bytes "
                "itself. Drop redirect=false and follow the redirect to storage.",
                size=size,
                limit=inline_max,
            )
        return Delivery.REDIRECT
    if asked is None and size > redirect_above:
        return Delivery.REDIRECT
    return Delivery.INLINE


def served_content_type(media_type: str) -> str:
    """The Content-Type a result of this media type is served with, inline or from storage:
    CSV names its charset (without one, browsers decode text/csv as windows-1252)."""
    return media_type + ("; charset=utf-8" if media_type == "text/csv" else "")


def result_link_lifetime() -> timedelta:
    """How long a result's SAS URL is valid (`OPS_RESULT_LINK_SECONDS`, 60..3600)."""
    lifetime = timedelta(seconds=get_int("OPS_RESULT_LINK_SECONDS"))
    if not _SHORTEST_LINK <= lifetime <= _LONGEST_LINK:
        raise ValueError(
            f"app setting OPS_RESULT_LINK_SECONDS={lifetime.total_seconds():.0f} is outside "
            f"{_SHORTEST_LINK.total_seconds():.0f}..{_LONGEST_LINK.total_seconds():.0f}"
        )
    return lifetime
