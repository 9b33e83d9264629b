"""JSON from clients, parsed totally: a value within bounds, or one refusal a person can act on.

`json.loads` alone is not total on hostile input. It raises ValueError past Python's
4,300-digit limit for `int()`, RecursionError on nesting deeper than the interpreter's
recursion limit, accepts `NaN`/`Infinity` (not JSON; `json.dumps` would then write
invalid JSON back), reads `1e999` as infinity, and keeps lone UTF-16 surrogates
(`"\\ud800"`) that no UTF-8 encoder downstream will write. `parse_json_text` refuses each
of these with `JsonRefused`, and bounds the nesting depth so every later walk over the
value (validation, fingerprinting, the durable runtime's serialisers) stays shallow.

No I/O; the property tests feed it arbitrary bytes.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from operations.errors import OperationsError

__all__ = ["MAX_JSON_DEPTH", "MAX_NUMBER_CHARS", "JsonRefused", "parse_json_text"]

# Deep enough for any request this API takes (the deepest is 2: {"urls": [...]}), far below
# the interpreter's recursion limit that json, copy and the SDK serialisers run into.
MAX_JSON_DEPTH: Final = 64
# Longest number literal read: 100 digits is 10^100, beyond every field's range, and far
# below the 4,300 digits at which int() refuses to convert.
MAX_NUMBER_CHARS: Final = 100


class JsonRefused(OperationsError):
    """The text is not JSON this API reads; the message says why, for a person."""


def _bounded_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise JsonRefused(
            f"a number has {len(literal)} characters; numbers may have at most {MAX_NUMBER_CHARS}"
        )
    return int(literal)


def _bounded_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise JsonRefused(
            f"a number has {len(literal)} characters; numbers may have at most {MAX_NUMBER_CHARS}"
        )
    value = float(literal)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {literal[:40]} is too large for a 64-bit float")
    return value


def _no_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON value; send a number or null")


def _decoded(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        # A leading byte order mark is tolerated, as json.loads tolerates it in bytes.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise JsonRefused(f"the text is not UTF-8 (byte {error.start} is not)") from None


def _check_value(value: Any) -> None:
    """Depth and text checks, iteratively (a recursive walk is what is being guarded)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise JsonRefused(f"it nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(node, dict):
                for key, item in node.items():
                    _check_text(key)
                    pending.append((item, depth + 1))
            else:
                pending.extend((item, depth + 1) for item in node)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonRefused(
            "a string holds an unpaired UTF-16 surrogate escape (like \\ud800), which is "
            "not Unicode text"
        ) from None


def parse_json_text(data: bytes | str) -> Any:
    """The JSON value of `data` (UTF-8 bytes or text), within this module's bounds.

    Raises JsonRefused, and nothing else, for anything that is not such a value.
    """
    text = _decoded(data)
    try:
        value = json.loads(
            text,
            parse_int=_bounded_int,
            parse_float=_bounded_float,
            parse_constant=_no_constant,
        )
    except json.JSONDecodeError as error:
        raise JsonRefused(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise JsonRefused(f"it nests deeper than {MAX_JSON_DEPTH} levels") from None
    _check_value(value)
    return value
