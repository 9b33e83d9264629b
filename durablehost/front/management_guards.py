"""What the management API checks before a handler acts: keys, body size, instance ids and
continuation tokens, each refused with a problem a caller can act on.

- Keys: with `--enforce-keys` the API opens to the Durable Task extension's system key
  (`durabletask_extension`) or the master key, passed as `code=` or `x-functions-key`, as
  the Functions host guards extension webhooks (`key_middleware`). The host's own durable
  client reaches the API without a key, as on Azure (see front/local_rpc.py).
- Bodies (orchestration input, event data) are read up to MAX_PAYLOAD_BYTES and refused
  with 413 beyond it, without holding more than that in memory (`read_bounded`).
- Instance ids follow the extension's rules for new ids (`check_new_instance_id`).
- Continuation tokens are parsed once here, bounded, before the store reads them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from durablehost.errors import InvalidInputError
from durablehost.front.keys import DURABLE_EXTENSION_KEY_NAME, FunctionKeys, presented_key
from durablehost.wire.client import PROBLEM_CONTENT_TYPE, problem_details

__all__ = [
    "MAX_INSTANCE_ID_LENGTH",
    "MAX_PAYLOAD_BYTES",
    "MAX_TOKEN_LENGTH",
    "PayloadTooLargeError",
    "check_continuation_token",
    "check_new_instance_id",
    "key_middleware",
    "problem_response",
    "read_bounded",
]

# DurableTask.Core's (and the extension's) limit on instance ids.
MAX_INSTANCE_ID_LENGTH = 256
# The largest request body (orchestration input, event data) the API takes. The app's own
# start requests are at most 64 KiB (OPS_MAX_REQUEST_BYTES) and the SDK posts an input
# JSON-encoded twice (up to twice the size); the Durable Task Scheduler's gRPC channel
# caps a message at 4 MiB. 16 MiB leaves room for all of them, while every accepted
# payload is kept in the history and replayed to the orchestrator each episode.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
# A token this host issues is base64 of a [created time, instance id] JSON pair: an id of
# 256 characters escaped as \uXXXX each fits in well under this.
MAX_TOKEN_LENGTH = 4096
_READ_CHUNK = 256 * 1024


class PayloadTooLargeError(InvalidInputError):
    """A request body over the API's limit (HTTP 413)."""


def problem_response(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any
) -> web.Response:
    """A problem+json response (with `message` = `detail`)."""
    return web.json_response(
        problem_details(status, detail, **extensions),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def key_middleware(keys: FunctionKeys) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An aiohttp middleware that answers 401 unless the request carries the extension's
    system key or the master key. Checked before routing answers, so a caller without a
    key learns nothing, not even which paths exist."""

    @web.middleware
    async def require_system_key(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        presented = presented_key(request.query, request.headers)
        if keys.allows_system(presented, DURABLE_EXTENSION_KEY_NAME):
            return await handler(request)
        source = f" in {keys.source}" if keys.source else ""
        return problem_response(
            401,
            "The Durable Functions management API needs the durabletask_extension system key "
            f"(systemKeys{source}) or the master key, as the `code` query parameter or the "
            "x-functions-key header; the URLs create_check_status_response hands out carry it.",
            headers={"WWW-Authenticate": 'FunctionsKey realm="durabletask"'},
        )

    return require_system_key


async def read_bounded(request: Any, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The request body, or PayloadTooLargeError once it passes `limit` bytes.

    A declared Content-Length over the limit is refused before reading anything; a body
    sent without one (chunked) is read a chunk at a time and dropped once over the limit,
    so a large body never sits in memory whole.
    """
    declared = (request.headers.get("Content-Length") or "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise _too_large(limit, f"{declared} bytes")
    content = getattr(request, "content", None)
    if not isinstance(request, web.BaseRequest) or content is None or content.at_eof():
        # Read already (aiohttp keeps what a middleware read), or an in-process request,
        # which holds its body (and may refuse it itself).
        try:
            body: bytes = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(limit, f"more than {limit} bytes") from None
        if len(body) > limit:
            raise _too_large(limit, f"{len(body)} bytes")
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.read(_READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            chunks.clear()
            raise _too_large(limit, f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, size: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is {size}; the management API takes at most {limit} bytes "
        "of orchestration input or event data. Keep large data in storage and pass a "
        "reference (a blob name or URL) instead."
    )


def check_new_instance_id(instance_id: str) -> None:
    """The extension's rules for a new orchestration's id (DurableClient.StartNewAsync),
    plus `.` and `..`, which no URL can carry as a path segment (clients and proxies
    collapse them before the request is sent)."""
    if not instance_id:
        raise InvalidInputError("the instance id is empty; leave it out to get a new one")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInputError(
            f"the instance id is {len(instance_id)} characters long; the limit is "
            f"{MAX_INSTANCE_ID_LENGTH}"
        )
    if instance_id.startswith("@"):
        raise InvalidInputError(
            f"instance id {instance_id!r} starts with '@', which is reserved for entities"
        )
    if any(ch in "/\\#?" or _is_control(ch) for ch in instance_id):
        raise InvalidInputError(
            f"instance id {instance_id!r} contains '/', '\\', '#', '?' or a control "
            "character; choose an id without them"
        )
    if instance_id in (".", ".."):
        raise InvalidInputError(
            f"instance id {instance_id!r} cannot appear in a URL path; choose another id"
        )


def _is_control(ch: str) -> bool:
    # .NET's char.IsControl: the C0 and C1 controls (Unicode category Cc).
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F


def check_continuation_token(token: str) -> None:
    """Refuse a continuation token no host could have issued, before the store parses it:
    too long, not base64url, not JSON, or JSON nested deep enough to exhaust recursion."""
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise _bad_token()
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, RecursionError):
        raise _bad_token() from None
    if not (isinstance(decoded, list) and all(isinstance(part, str) for part in decoded)):
        raise _bad_token()


def _bad_token() -> InvalidInputError:
    return InvalidInputError(
        "The continuation token is not one this host issued; start the listing again "
        "without x-ms-continuation-token."
    )
