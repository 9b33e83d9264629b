"""When the host cannot take work: 503 + Retry-After instead of 500, and a clean stop.

Three things make the host unable to take a request, none of them the client's fault or a
bug: it is stopping (SIGTERM), its hub writer process died (the host exits and a restart
recovers), or the task hub refused a write (disk full). A client should then hear
`503 Service Unavailable` with `Retry-After` and a problem+json body, and try again.

`HostAvailability` is the host-wide switch: once `refuse(reason)` is called, its
middleware answers every new request 503, and `drain(grace)` lets requests already in
progress finish for `grace` seconds, then cancels the rest and answers those 503 too.

A refusal inside one request (a start that the hub refused while the host goes on) reaches
the HTTP front through the durable client: the management API answers the SDK 503, the
SDK raises a plain Exception in the user's function, and the function fails. So the
management API notes each refusal in the request's context (`note_hub_refusal`), and the
front, seeing the function fail, asks `hub_refusal_of` whether a refusal caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from durablehost.errors import HubUnavailableError
from durablehost.wire.client import PROBLEM_CONTENT_TYPE, problem_details

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "HostAvailability",
    "HubRefusal",
    "hub_refusal_of",
    "note_hub_refusal",
    "noting_hub_refusals",
    "unavailable_response",
]

log = logging.getLogger(__name__)

# Seconds a client waits before trying again: about what a restart of the host takes.
DEFAULT_RETRY_AFTER = HubUnavailableError.retry_after
# How long cancelled requests get to write their 503 once the grace is over.
_CANCEL_SECONDS = 1.0
# How far down an exception's cause/context chain to look for a refusal.
_CHAIN_DEPTH = 8

# The Retry-After of every hub refusal the management API answered in this request.
_refusals: ContextVar[list[int] | None] = ContextVar("durablehost_hub_refusals", default=None)


def unavailable_response(detail: str, retry_after: int, *, close: bool = False) -> web.Response:
    """503 problem+json with Retry-After; `close` also ends the connection."""
    body = problem_details(503, detail, title="Service Unavailable", message=detail)
    response = web.Response(
        status=503,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers={"Retry-After": str(retry_after)},
    )
    if close:
        response.force_close()
    return response


@contextlib.contextmanager
def noting_hub_refusals() -> Iterator[list[int]]:
    """Collect, for the code run inside, the Retry-After of each hub refusal noted."""
    noted: list[int] = []
    token = _refusals.set(noted)
    try:
        yield noted
    finally:
        _refusals.reset(token)


def note_hub_refusal(retry_after: int) -> None:
    """The management API refused a call of this request's context with 503."""
    noted = _refusals.get()
    if noted is not None:
        noted.append(retry_after)


@dataclass(frozen=True, slots=True)
class HubRefusal:
    """Why a function's failure is a refusal of the task hub, and when to come back."""

    retry_after: int
    reason: str | None  # what the hub said (None when only the status is known)


def hub_refusal_of(error: BaseException, noted: list[int]) -> HubRefusal | None:
    """The refusal of the task hub that made a function fail with `error`; None when
    it failed for another reason.

    `noted` holds the refusals of in-process durable client calls. A call that went over
    HTTP (a sync function running its own event loop) leaves none; the SDK's start_new
    then raises an Exception carrying the 503 problem body, found here as well.
    """
    retry_after = max(noted) if noted else None
    seen: BaseException | None = error
    for _ in range(_CHAIN_DEPTH):
        if seen is None:
            break
        if isinstance(seen, HubUnavailableError):
            return HubRefusal(seen.retry_after, str(seen))
        body = seen.args[0] if len(seen.args) == 1 else None
        if isinstance(body, dict) and body.get("status") == 503:
            detail = body.get("detail")
            return HubRefusal(
                retry_after or DEFAULT_RETRY_AFTER, detail if isinstance(detail, str) else None
            )
        seen = seen.__cause__ or seen.__context__
    return HubRefusal(retry_after, None) if retry_after is not None else None


class HostAvailability:
    """Whether the host takes new requests, and the requests in progress."""

    def __init__(self) -> None:
        self.refusal: str | None = None
        self.retry_after = DEFAULT_RETRY_AFTER
        self._in_flight: set[asyncio.Task[object]] = set()
        self._cut_off: set[asyncio.Task[object]] = set()
        self._drained = asyncio.Event()

    def refuse(self, reason: str, *, retry_after: int = DEFAULT_RETRY_AFTER) -> None:
        """Answer every new request 503 from now on (the first reason is kept)."""
        if self.refusal is None:
            self.refusal = reason
            self.retry_after = retry_after
        if not self._in_flight:
            self._drained.set()

    @property
    def in_flight(self) -> int:
        """Requests being handled now."""
        return len(self._in_flight)

    def middleware(self) -> Middleware:
        """The aiohttp middleware: refuse while refusing, track what is in progress."""

        @web.middleware
        async def availability(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.refusal is not None:
                return unavailable_response(self.refusal, self.retry_after, close=True)
            task = asyncio.current_task()
            if task is None:  # not inside a task: nothing to track or cut off
                return await handler(request)
            self._in_flight.add(task)
            try:
                return await handler(request)
            except asyncio.CancelledError:
                if task not in self._cut_off:
                    raise
                # Our own cut-off at the end of drain(): answer instead of dropping it.
                task.uncancel()
                assert self.refusal is not None
                return unavailable_response(self.refusal, self.retry_after, close=True)
            finally:
                self._in_flight.discard(task)
                self._cut_off.discard(task)
                if not self._in_flight and self.refusal is not None:
                    self._drained.set()

        return availability

    async def drain(self, grace: float) -> int:
        """Wait up to `grace` seconds for the requests in progress, then cancel those left
        (each answers 503); returns how many were cut off. Call after refuse()."""
        if not self._in_flight:
            return 0
        self._drained.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), grace)
        left = list(self._in_flight)
        for task in left:
            self._cut_off.add(task)
            task.cancel()
        if left:
            log.warning("%d request(s) still running after %.0fs; answered 503", len(left), grace)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), _CANCEL_SECONDS)
        return len(left)
