"""Reading HTTP requests: JSON bodies with size and media-type checks, Accept negotiation,
list query parameters, continuation tokens and header values. No I/O, so it is unit-tested
directly.

Every reader here is total: for any text or bytes a client can send it returns a value or
raises BadRequest (answered as problem+json), never another exception, so no request can
turn into a 500. Bounds are explicit (JSON depth and number length in operations.json_input,
query integers as ASCII digits of bounded length, continuation tokens of bounded length
and alphabet) because Python's own parsers fail on such input with ValueError or
RecursionError instead of a refusal.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from operations.errors import OperationsError
from operations.json_input import JsonRefused, parse_json_text
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
    "parse_query_int",
    "read_header",
]

DEFAULT_TOP = 50
MAX_TOP = 1000
# Our tokens wrap the hub's: its tokens (a table key pair, an offset) are far shorter.
MAX_CONTINUATION_CHARS: Final = 4096
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
# What the hub token may hold: it goes back to the task hub as a header value.
_HEADER_SAFE: Final = re.compile(r"[\x20-\x7e]+")
# A query integer: ASCII digits only (str.isdigit() and int() also take "²", "٣" or "1_0"),
# at most 9 of them, so int() never meets a long string.
_QUERY_INT: Final = re.compile(r"[0-9]{1,9}")
# Blanks around each state in `status=Running, Failed` (the spec's pattern allows these).
_BLANKS: Final = " \t\r\n"
_QVALUE: Final = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


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
        return parse_json_text(body)
    except JsonRefused as error:
        raise BadRequest(400, "invalid-json", f"The body is not valid JSON: {error}.") from None


def read_header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name` (None when absent), or BadRequest 400 when it is not text.

    Header values are ASCII (RFC 9110 section 5.5; obs-text is tolerated as Latin-1); a
    host that decodes raw bytes leniently (utf-8 with surrogateescape) can hand over lone
    surrogates, which no later `.encode()` survives. Refusing them here names the header.
    """
    value = headers.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _is_header_text(value):
        raise BadRequest(
            400,
            "invalid-header",
            f"The {name} header is not readable text: send it as ASCII (e.g. a UUID for "
            "Idempotency-Key, media types for Accept, quoted ETags for If-None-Match).",
            header=name,
        )
    return value


def _is_header_text(value: str) -> bool:
    # Tab, visible ASCII, space and obs-text (U+0080..U+00FF); no other control character.
    return all(ch == "\t" or (0x20 <= ord(ch) <= 0xFF and ord(ch) != 0x7F) for ch in value)


def _accept_ranges(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in parts[1:]:
            if param.lower().startswith("q="):
                quality = _quality(param[2:])
        ranges.append((media, quality))
    return ranges


def _quality(text: str) -> float:
    """An Accept weight (RFC 9110 section 12.4.2: 0 to 1, at most three decimals); anything
    else (`q=nan`, `q=²`, `q=1e999`) weighs 0, so a malformed range never wins."""
    if not _QVALUE.fullmatch(text):
        return 0.0
    return float(text)


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
    refused = BadRequest(
        400,
        "invalid-query",
        "continuationToken is not one this API handed out; take it from nextLink.",
        errors=[
            {
                "field": "continuationToken",
                "detail": "is not a token this API handed out; take it from nextLink",
            }
        ],
    )
    if len(token) > MAX_CONTINUATION_CHARS or not _BASE64URL.fullmatch(token):
        raise refused
    try:
        data = parse_json_text(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, JsonRefused):
        raise refused from None
    # type() is int: `true` and `1.0` equal 1 in Python, and neither is our version.
    if not isinstance(data, dict) or type(data.get("v")) is not int or data["v"] != 1:
        raise refused
    hub_token = data.get("h")
    if not isinstance(hub_token, str) or not _HEADER_SAFE.fullmatch(hub_token):
        raise refused
    return hub_token


def parse_query_int(raw: str, name: str, minimum: int, maximum: int) -> int:
    """The integer in query parameter `name`, from `minimum` to `maximum`.

    Only ASCII digits are read, as docs/openapi.yaml says: `int()` would also take " 5",
    "1_000" and Unicode digits such as "٣", and fail with ValueError past 4,300 digits.
    Raises BadRequest 400 with the parameter in `errors` for anything else.
    """
    if _QUERY_INT.fullmatch(raw) and minimum <= int(raw) <= maximum:
        return int(raw)
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    detail = f"must be an integer from {minimum} to {maximum} in ASCII digits, got {shown!r}"
    raise BadRequest(
        400,
        "invalid-query",
        f"Bad query parameter {name}: {detail}.",
        errors=[{"field": name, "detail": detail}],
    )


def parse_list_query(params: dict[str, str]) -> ListQuery:
    """Check the list query: status (comma-separated, any case), kind, top,
    continuationToken, exactly as docs/openapi.yaml describes them (a parameter that is
    present must be valid, even when empty)."""
    problems: list[dict[str, str]] = []
    states: list[OperationState] = []
    for raw in (params.get("status") or "").split(","):
        raw = raw.strip(_BLANKS)
        if not raw:
            continue
        match = [s for s in OperationState if s.value.lower() == raw.lower()]
        if match:
            states.append(match[0])
        else:
            allowed = ", ".join(s.value for s in OperationState)
            problems.append({"field": "status", "detail": f"{raw!r} is not one of {allowed}"})
    kind = params.get("kind")
    known = [k.name for k in all_kinds()]
    if kind is not None and kind not in known:
        problems.append(
            {"field": "kind", "detail": f"{kind!r} is not a kind; known: {', '.join(known)}"}
        )
    top = DEFAULT_TOP
    raw_top = params.get("top")
    if raw_top is not None:
        try:
            top = parse_query_int(raw_top, "top", 1, MAX_TOP)
        except BadRequest as error:
            problems.extend(error.extra["errors"])
    continuation = None
    token = params.get("continuationToken")
    if token:
        try:
            continuation = decode_continuation(token)
        except BadRequest as error:
            problems.extend(error.extra["errors"])
    if problems:
        details = "; ".join(f"{p['field']} {p['detail']}" for p in problems)
        raise BadRequest(400, "invalid-query", f"Bad query parameters: {details}.", errors=problems)
    return ListQuery(
        states=tuple(dict.fromkeys(states)), kind=kind, top=top, continuation=continuation
    )
