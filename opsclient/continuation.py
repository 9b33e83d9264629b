"""Continuation tokens: an `Operation` as an opaque string, and back.

The token is base64url of a small JSON object holding the URLs to poll and the final-state
rule, so a poller can be resumed by another client object or process. It never holds the
client's function key or token. It does hold the URLs exactly as the server gave them: a
Durable Functions `statusQueryGetUri` carries its system key in `code=`, so keep a token as
private as that URL.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from opsclient.errors import ConfigurationError
from opsclient.final_state import FinalState, FinalStateVia
from opsclient.model import Operation

__all__ = ["decode_operation", "encode_operation"]

_VERSION: Final = 1
_URL_FIELDS: Final = (
    "status_url",
    "operation_url",
    "result_url",
    "send_event_url",
    "terminate_url",
)


def encode_operation(operation: Operation) -> str:
    """The token for `operation` (its URLs, id and final-state rule)."""
    state: dict[str, Any] = {"v": _VERSION, "id": operation.id}
    state |= {name: getattr(operation, name) for name in _URL_FIELDS}
    if (final := operation.final_state) is not None:
        state["final"] = {
            "method": final.method,
            "requestUrl": final.request_url,
            "locationUrl": final.location_url,
            "via": final.via.value if final.via else None,
        }
    text = json.dumps(state, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def decode_operation(token: str) -> Operation:
    """The `Operation` a token names; ConfigurationError when it is not one of ours."""
    try:
        padded = token.strip() + "=" * (-len(token.strip()) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, AttributeError):
        raise ConfigurationError("not an opsclient continuation token (undecodable)") from None
    if not isinstance(state, dict) or state.get("v") != _VERSION:
        raise ConfigurationError(
            f"not an opsclient continuation token of version {_VERSION}: "
            f"{str(state)[:60] if isinstance(state, dict) else type(state).__name__}"
        )
    urls = {name: state.get(name) for name in _URL_FIELDS}
    for name, value in urls.items():
        if value is not None and not (
            isinstance(value, str) and value.startswith(("http://", "https://"))
        ):
            raise ConfigurationError(f"continuation token: {name} is not an http(s) URL")
    if urls["status_url"] is None:
        raise ConfigurationError("continuation token: no status URL to poll")
    identifier = state.get("id")
    return Operation(
        status_url=urls["status_url"],
        id=identifier if isinstance(identifier, str) else None,
        operation_url=urls["operation_url"],
        result_url=urls["result_url"],
        send_event_url=urls["send_event_url"],
        terminate_url=urls["terminate_url"],
        final_state=_final_state(state.get("final")),
    )


def _final_state(value: Any) -> FinalState | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) for k in ("method", "requestUrl")
    ):
        raise ConfigurationError("continuation token: malformed final-state rule")
    location = value.get("locationUrl")
    return FinalState(
        method=value["method"],
        request_url=value["requestUrl"],
        location_url=location if isinstance(location, str) else None,
        via=FinalStateVia.parse(value.get("via")),
    )
