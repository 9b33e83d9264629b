"""Reading HTTP requests: JSON bodies with size and media-type checks, Accept negotiation,
list query parameters and continuation tokens. No I/O, so it is unit-tested directly."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from operations.errors import OperationsError
from operations.kinds import all_kinds
from operations.monitor import OperationState

__all__ = [
    "BadRequest",
    "ListQuery",
    "choose_media_type",
    "decode_continuation",
    "encode_continuation",
    "etag_matches",
    "is_json_media_type",
    "parse_json_body",
    "parse_list_query",
]

DEFAULT_TOP = 50
MAX_TOP = 1000


class BadRequest(OperationsError):
    """A request the API refuses; carries the HTTP status and problem slug to answer with."""

    def __init__(self, status: int, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extra = extra


def is_json_media_type(content_type: str) -> bool:
    """application/json, or any application/*+json, parameters ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def parse_json_body(body: bytes, content_type: str | None, max_bytes: int) -> Any:
    """The parsed JSON body; an empty body with no media type reads as `{}` (all defaults).

    Raises BadRequest 413 over the limit, 415 for a non-JSON media type, 400 for bad JSON.
    """
    if len(body) > max_bytes:
        raise BadRequest(
            413,
            "body-too-large",
            f"The request body is {len(body)} bytes; the limit is {max_bytes} bytes.",
            limit=max_bytes,
        )
    if not body.strip() and not content_type:
        return {}
    if not content_type or not is_json_media_type(content_type):
        raise BadRequest(
            415,
            "unsupported-media-type",
            f"Send the body as JSON with Content-Type: application/json "
            f"(got {content_type or 'no Content-Type'}).",
        )
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise BadRequest(400, "invalid-json", "The body is not UTF-8 encoded JSON.") from None
    except json.JSONDecodeError as error:
        raise BadRequest(
            400,
            "invalid-json",
            f"The body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}.",
        ) from None


def _accept_ranges(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in parts[1:]:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        ranges.append((media, quality))
    return ranges


def choose_media_type(accept: str | None, available: list[str]) -> str | None:
    """The available type the Accept header prefers (first available if none given), or
    None when nothing acceptable is available (answer 406).

    As RFC 9110 section 12.5.1: a type's quality is that of the most specific range
    matching it (`text/csv;q=0, */*` excludes CSV); ties go to the server's order.
    """
    if not available:
        return None
    if not accept or not accept.strip():
        return available[0]
    ranges = _accept_ranges(accept)
    best: tuple[float, int] | None = None
    chosen: str | None = None
    for index, media_type in enumerate(available):
        main = media_type.split("/", 1)[0]
        matches = [
            (2 if media == media_type else (1 if media == f"{main}/*" else 0), quality)
            for media, quality in ranges
            if media in (media_type, f"{main}/*", "*/*")
        ]
        if not matches:
            continue
        quality = max(matches)[1]
        if quality <= 0:
            continue
        rank = (quality, -index)
        if best is None or rank > best:
            best, chosen = rank, media_type
    return chosen


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when If-None-Match names this ETag (weak comparison) or is `*`."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


@dataclass(frozen=True, slots=True)
class ListQuery:
    """GET /api/operations parameters, checked."""

    states: tuple[OperationState, ...]
    kind: str | None
    top: int
    continuation: str | None  # the task hub's token for the next page (None: the first)


def encode_continuation(hub_token: str) -> str:
    """Our opaque token for "the page after this one": the task hub's own continuation
    token (the management API's `x-ms-continuation-token`), wrapped so a client cannot
    mistake it for something to build or edit."""
    raw = json.dumps({"v": 1, "h": hub_token}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continuation(token: str) -> str:
    """The task hub token a continuation token stands for; BadRequest if it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data.get("v") != 1 or not isinstance(data["h"], str) or not data["h"]:
            raise ValueError("not a version 1 token")
        return str(data["h"])
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise BadRequest(
            400,
            "invalid-query",
            "continuationToken is not one this API handed out; take it from nextLink.",
        ) from None


def parse_list_query(params: dict[str, str]) -> ListQuery:
    """Check the list query: status (comma-separated), kind, top, continuationToken."""
    problems: list[dict[str, str]] = []
    states: list[OperationState] = []
    for raw in (params.get("status") or "").split(","):
        raw = raw.strip()
        if not raw:
            continue
        match = [s for s in OperationState if s.value.lower() == raw.lower()]
        if match:
            states.append(match[0])
        else:
            allowed = ", ".join(s.value for s in OperationState)
            problems.append({"field": "status", "detail": f"{raw!r} is not one of {allowed}"})
    kind = (params.get("kind") or "").strip() or None
    known = [k.name for k in all_kinds()]
    if kind is not None and kind not in known:
        problems.append(
            {"field": "kind", "detail": f"{kind!r} is not a kind; known: {', '.join(known)}"}
        )
    top = DEFAULT_TOP
    raw_top = params.get("top")
    if raw_top is not None and raw_top != "":
        try:
            top = int(raw_top)
        except ValueError:
            top = 0
        if not 1 <= top <= MAX_TOP:
            problems.append({"field": "top", "detail": f"must be an integer from 1 to {MAX_TOP}"})
    continuation = None
    token = params.get("continuationToken")
    if token:
        continuation = decode_continuation(token)
    if problems:
        names = ", ".join(p["field"] for p in problems)
        raise BadRequest(400, "invalid-query", f"Bad query parameters ({names}).", errors=problems)
    return ListQuery(
        states=tuple(dict.fromkeys(states)), kind=kind, top=top, continuation=continuation
    )
