"""Fetching a result: revalidation with If-None-Match, and a grace period for 404s.

No I/O: the clients ask `ResultCache` which condition to send and what a 304 stands for,
and `MissingResultGrace` whether a 404 deserves another try and after how long.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import httpx

from opsclient.defaults import RESULT_CACHE_ENTRIES, RESULT_CACHE_MAX_BYTES
from opsclient.dialects import decode_body
from opsclient.errors import ConfigurationError
from opsclient.polling import PollingPolicy, parse_retry_after
from opsclient.protocol import RequestSpec

__all__ = [
    "CachedResult",
    "MissingResultGrace",
    "ResultCache",
    "decode_result",
    "inline_response",
    "read_initial",
]

# Describe the stored bytes, not how they travelled: httpx already decoded the body.
_NOT_REPLAYED: Final = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True, slots=True)
class CachedResult:
    """A result answer kept for revalidation: its ETag, headers and (decoded) bytes."""

    etag: str
    headers: tuple[tuple[str, str], ...]
    content: bytes

    def as_response(self, request: httpx.Request | None = None) -> httpx.Response:
        """The kept answer as a fresh 200 response."""
        response = httpx.Response(200, headers=list(self.headers), content=self.content)
        if request is not None:
            response.request = request
        return response


class ResultCache:
    """Result answers per (URL, Accept), least recently used dropped first.

    Bounded by `max_entries` and by `max_bytes` per answer. Thread-safe: one client may
    fetch from several threads (the sync poller does).
    """

    def __init__(
        self, max_entries: int = RESULT_CACHE_ENTRIES, max_bytes: int = RESULT_CACHE_MAX_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], CachedResult] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(spec: RequestSpec) -> tuple[str, str]:
        accept = next((v for k, v in spec.headers.items() if k.lower() == "accept"), "")
        return str(httpx.URL(spec.url)), accept

    def conditional(self, spec: RequestSpec) -> tuple[RequestSpec, CachedResult | None]:
        """`spec` with If-None-Match when a copy is kept, and that copy (for a 304)."""
        with self._lock:
            cached = self._entries.get(self._key(spec))
            if cached is not None:
                self._entries.move_to_end(self._key(spec))
        if cached is None:
            return spec, None
        return replace(spec, headers={**spec.headers, "if-none-match": cached.etag}), cached

    def remember(self, spec: RequestSpec, response: httpx.Response) -> None:
        """Keep a 200 answer that has an ETag and is small enough."""
        etag = response.headers.get("etag")
        if (
            self.max_entries <= 0
            or response.status_code != 200
            or not etag
            or len(response.content) > self.max_bytes
            or "no-store" in response.headers.get("cache-control", "").lower()
        ):
            return
        headers = tuple(
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in _NOT_REPLAYED
        )
        with self._lock:
            self._entries[self._key(spec)] = CachedResult(etag, headers, response.content)
            self._entries.move_to_end(self._key(spec))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class MissingResultGrace:
    """Whether a 404 from a result URL is waited out, and for how long.

    After the status said Succeeded, a result URL may answer 404 for a while (replicas,
    a resource created just after the status flipped). It is polled again, honouring
    `Retry-After` within the polling policy, until `grace` seconds after the first 404.
    """

    def __init__(self, grace: float, policy: PollingPolicy) -> None:
        self.grace = grace
        self.policy = policy
        self.deadline: float | None = None
        self.attempts = 0

    def retry_delay(
        self, response: httpx.Response, *, now: float, wall_now: datetime
    ) -> float | None:
        """Seconds to wait before asking again, or None: the 404 (or other answer) stands."""
        if response.status_code != 404 or self.grace <= 0:
            return None
        if self.deadline is None:
            self.deadline = now + self.grace
        remaining = self.deadline - now
        if remaining <= 0:
            return None
        hinted = parse_retry_after(
            response.headers.get("retry-after"),
            now=wall_now,
            server_date=response.headers.get("date"),
        )
        policy = self.policy
        if hinted is None:
            hinted = min(
                policy.default_interval * policy.growth**self.attempts, policy.default_max_interval
            )
        self.attempts += 1
        return min(policy.clamp(hinted), remaining)


def read_initial(response: httpx.Response) -> httpx.Response:
    """`response` (an initial answer handed to `follow`) with its body read and its request
    known: the rules need the request's method and URL."""
    try:
        response.request  # noqa: B018 (raises when the response was built without one)
    except RuntimeError:
        raise ConfigurationError(
            "follow() needs the response of a sent request (response.request is not set)"
        ) from None
    try:
        response.read()
    except httpx.StreamError as exc:
        raise ConfigurationError(
            f"follow() needs a response whose body can still be read: {exc}"
        ) from None
    return response


def inline_response(value: Any) -> httpx.Response:
    """An inline result (a Durable `output`, a final status body) as a JSON 200 answer."""
    if isinstance(value, bytes):
        return httpx.Response(200, content=value)
    return httpx.Response(200, json=value)


def decode_result(response: httpx.Response) -> Any:
    """A final answer's body: parsed JSON, text or bytes by content type."""
    try:
        url = str(response.request.url)
    except RuntimeError:
        url = "the inline result"
    return decode_body(response, url)
