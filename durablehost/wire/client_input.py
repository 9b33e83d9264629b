"""What clients send to the management API, read strictly: request bodies
(`decode_client_payload`) and query parameters (`QueryParameters`, `parse_query_time`).

Every reader is total: whatever the bytes, it returns a value or raises InvalidInputError
with a fix (no RecursionError from deep JSON, no ValueError from a 4,300-digit number, no
OverflowError from a date at the edge of the calendar). Pure functions, no I/O.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from durablehost.errors import InvalidInputError
from durablehost.model.instances import RuntimeStatus

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_QUERY_INT",
    "MAX_QUERY_SECONDS",
    "QueryParameters",
    "decode_client_payload",
    "parse_query_time",
]

# The largest `top` (and any whole-number parameter): the extension parses it as a .NET
# int; SQLite's LIMIT takes up to 2**63 - 1, so every value the extension accepts works.
MAX_QUERY_INT = 2**31 - 1
# The longest wait (`timeout`) on one request: Azure's front end ends any HTTP request
# after 230 s, so a longer wait could never be answered there either.
MAX_QUERY_SECONDS = 230.0


def decode_client_payload(body: str) -> str | None:
    """The JSON text of the payload a client sent as a request body (None when empty).

    The SDK client JSON-encodes its input and then posts that text as a JSON string
    (double encoding). A body that is a JSON string holding JSON text is therefore
    unwrapped to the inner text; any other JSON body is taken as it is. For orchestration
    input this is what the real host ends up passing to the orchestrator; for event data
    the real host skips the unwrap and hands the orchestrator a string (Durable Functions
    Python issue #295), which we deliberately do not reproduce.

    Raises InvalidInputError when the body is not JSON.
    """
    stripped = body.strip()
    if not stripped:
        return None
    value = _bounded_json(stripped, "the request body")
    if isinstance(value, str):
        inner = value.strip()
        if inner:
            try:
                _bounded_json(inner, "the JSON text in the request body's string")
            except InvalidInputError:
                return stripped
            return inner
    return stripped


# Newtonsoft.Json's default MaxDepth (13.0+), which the extension parses bodies with: a
# deeper payload is "Invalid JSON content" there, and here it would later overflow the
# recursion of the SDK's and this host's own JSON encoders.
MAX_JSON_DEPTH = 64


def _bounded_json(text: str, what: str) -> Any:
    """`text` parsed as JSON nested at most MAX_JSON_DEPTH deep; InvalidInputError else."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
        depth = MAX_JSON_DEPTH + 1
    except ValueError as exc:
        raise InvalidInputError(
            f"{what} is not valid JSON ({exc}); send a JSON value such as "
            '{"city": "Tokyo"}, "text" or 42'
        ) from None
    else:
        # Counting brackets is cheap and bounds the depth from above; only a text with
        # that many is walked.
        brackets = text.count("[") + text.count("{")
        depth = _json_depth(value) if brackets > MAX_JSON_DEPTH else 0
    if depth > MAX_JSON_DEPTH:
        raise InvalidInputError(
            f"{what} nests arrays/objects more than {MAX_JSON_DEPTH} deep; flatten it"
        )
    return value


def _json_depth(value: Any) -> int:
    """How deep `value` nests, counted iteratively (stops once past MAX_JSON_DEPTH)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        pending.extend((child, depth + 1) for child in children)
    return deepest


class QueryParameters:
    """Management API query parameters, looked up case-insensitively as .NET's
    NameValueCollection does; each typed getter raises InvalidInputError with a fix."""

    def __init__(self, query: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._values: dict[str, str] = {}
        for key, value in query.items() if isinstance(query, Mapping) else query:
            self._values.setdefault(key.lower(), value)

    def text(self, name: str) -> str | None:
        """The raw value, or None when absent."""
        return self._values.get(name.lower())

    def _given(self, name: str) -> str | None:
        value = self.text(name)
        return value.strip() if value and value.strip() else None

    def flag(self, name: str, default: bool) -> bool:
        """A true/false flag (any case, as the SDK sends `True`)."""
        value = self._given(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise InvalidInputError(f"{name}={value!r} is not a boolean; use {name}=true or false")
        return value.lower() == "true"

    def positive_int(self, name: str, *, at_most: int = MAX_QUERY_INT) -> int | None:
        """A whole number >= 1 in ASCII digits, clamped to `at_most`; None when absent."""
        value = self._given(name)
        if value is None:
            return None
        # isascii: str.isdigit() also takes "١٢" and "²"; int() would take the first.
        if not (value.isascii() and value.isdigit()) or not value.strip("0"):
            raise InvalidInputError(f"{name}={value!r} is not a positive whole number, e.g. 50")
        digits = value.lstrip("0")
        # Longer than any bound: clamped without int(), which refuses 4,300+ digits.
        if len(digits) > len(str(at_most)):
            return at_most
        return min(int(digits), at_most)

    def seconds(self, name: str, *, at_most: float = MAX_QUERY_SECONDS) -> float | None:
        """A finite, non-negative number of seconds (ASCII), clamped to `at_most`; None
        when absent."""
        value = self._given(name)
        if value is None:
            return None
        number = math.nan
        if value.isascii() and len(value) <= 64:
            with contextlib.suppress(ValueError):
                number = float(value)
        if not math.isfinite(number) or number < 0:
            raise InvalidInputError(f"{name}={value!r} is not a number of seconds, e.g. 30")
        return min(number, at_most)

    def moment(self, name: str) -> datetime | None:
        """A date/time as aware UTC (see parse_query_time), or None when absent."""
        value = self._given(name)
        return None if value is None else parse_query_time(name, value)

    def statuses(self, name: str) -> frozenset[RuntimeStatus] | None:
        """A comma-separated list of runtime status names (any case), or None for all."""
        wanted: set[RuntimeStatus] = set()
        for part in (self.text(name) or "").split(","):
            label = part.strip()
            if not label:
                continue
            status = _RUNTIME_STATUS_NAMES.get(label.lower())
            if status is None:
                known = ", ".join(str(s) for s in RuntimeStatus)
                raise InvalidInputError(
                    f"{name} holds an unknown runtime status {label!r}; use a comma-separated "
                    f"list of: {known}"
                )
            wanted.add(status)
        return frozenset(wanted) or None


_RUNTIME_STATUS_NAMES = {str(status).lower(): status for status in RuntimeStatus}
# '+' in an unencoded offset arrives as a space.
_SPACE_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_SHORT_YEAR = re.compile(r"^(\d{1,3})-")


def parse_query_time(name: str, value: str) -> datetime:
    """A date/time query parameter as an aware UTC datetime (naive input counts as UTC)."""
    text = _SPACE_OFFSET.sub(r"\1+\2", value.strip())
    # Python's strftime on Linux drops the leading zeros of years before 1000, e.g. the
    # SDK formats datetime.min as "1-01-01T..."; the extension pads them back too.
    text = _SHORT_YEAR.sub(lambda match: match.group(1).zfill(4) + "-", text)
    try:
        moment = datetime.fromisoformat(text)
        # 9999-12-31T23:59:59-14:00 is a valid date whose UTC time is past year 9999.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInputError(
            f"{name}={value!r} is not a date/time between years 1 and 9999 in UTC; use "
            "ISO 8601, e.g. 2024-05-01T10:00:00Z"
        ) from None
