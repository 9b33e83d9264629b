"""httpx transports that turn every 202 into the operation's final result.

Install once, and an existing httpx program gets finished results instead of 202s (the
Python counterpart of an axios interceptor that polls until done)::

    client = httpx.Client(transport=OperationsTransport())
    response = client.post("https://api.example.com/reports", json={...})
    response.status_code  # 200, the result's body and headers

The wrapped transport (the network by default) sends the original request as it is; a 202
(or a 200/201 naming an Operation-Location/Azure-AsyncOperation monitor) is then followed
with `OperationsClient.follow_response`: the same polling, Retry-After, retries and
final-state rules. Decisions, in short:

- Bounded: `timeout` seconds in total per followed request (an hour unless told).
- Credentials: the original request's credential headers (`forward_headers`, e.g.
  Authorization, x-functions-key, Cookie) go with the polls and the result GET only when
  those go to the original request's scheme, host and port; a status URL or result
  redirect elsewhere (a blob SAS URL) gets none.
- Opt-out per request: `extensions={"opsclient.follow": False}` returns the 202 as is.
- Failures come back as responses, so `raise_for_status()` and status checks keep
  working: an error status of the server (on a poll or the result) is returned with its
  status and problem details; Failed becomes 422 and Canceled 409
  (`application/problem+json`, the operations API's problem types), our own timeout 504.
  Each carries the opsclient error in `response.extensions["opsclient.error"]`. Only a
  network failure raises, as the httpx exception it was (`httpx.ConnectError`, ...).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import httpx

from opsclient.async_client import AsyncOperationsClient
from opsclient.clock import Clock
from opsclient.defaults import DEFAULT_WAIT_TIMEOUT
from opsclient.errors import (
    ConnectionFailed,
    HTTPStatusError,
    OperationCanceled,
    OperationFailed,
    OperationTimeout,
    OpsClientError,
)
from opsclient.final_state import FinalStateVia
from opsclient.polling import PollingPolicy
from opsclient.retries import RetryPolicy
from opsclient.sync_client import OperationsClient

__all__ = [
    "FOLLOW_EXTENSION",
    "FORWARDED_HEADERS",
    "AsyncOperationsTransport",
    "OperationsTransport",
]

FOLLOW_EXTENSION: Final = "opsclient.follow"
"""Request extension: set it to False to get a 202 back untouched."""

FORWARDED_HEADERS: Final = frozenset(
    {
        "authorization",
        "cookie",
        "x-functions-key",
        "api-key",
        "x-api-key",
        "ocp-apim-subscription-key",
        "x-ms-client-request-id",
    }
)
"""Headers of the original request repeated on its polls (same origin only)."""

_MONITOR_HEADERS: Final = ("operation-location", "azure-asyncoperation")
_PROBLEM_TYPE: Final = "urn:durable-ops:problem:"


@dataclass(frozen=True, slots=True)
class _Forwarded:
    origin: tuple[str, str, int | None]
    headers: tuple[tuple[str, str], ...]


# The credentials of the request being followed. A context variable, because the polls
# of one followed request run in its thread (sync) or task (async), and another request
# followed at the same time must not see them.
_FORWARDED: contextvars.ContextVar[_Forwarded | None] = contextvars.ContextVar(
    "opsclient_forwarded_credentials", default=None
)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host.lower(), url.port or {"http": 80, "https": 443}.get(url.scheme)


def _with_credentials(request: httpx.Request) -> httpx.Request:
    forwarded = _FORWARDED.get()
    if forwarded is not None and _origin(request.url) == forwarded.origin:
        for name, value in forwarded.headers:
            if name not in request.headers:
                request.headers[name] = value
    return request


def _forwarding(request: httpx.Request, names: frozenset[str]) -> _Forwarded:
    headers = tuple((k, v) for k, v in request.headers.multi_items() if k.lower() in names)
    return _Forwarded(_origin(request.url), headers)


def _worth_following(request: httpx.Request, response: httpx.Response) -> bool:
    if request.extensions.get(FOLLOW_EXTENSION) is False:
        return False
    if response.status_code == 202:
        return True
    return response.status_code in (200, 201) and any(
        h in response.headers for h in _MONITOR_HEADERS
    )


def _accept(request: httpx.Request) -> str | None:
    accept = request.headers.get("accept")
    return None if accept in (None, "*/*") else accept


@dataclass(frozen=True, slots=True)
class _FollowSettings:
    """What both transports decide the same way: how long to follow, which final-state
    rule, and which credential headers travel with the polls."""

    timeout: float | None
    final_state_via: FinalStateVia | None
    forward: frozenset[str]

    @classmethod
    def of(
        cls,
        timeout: float | None,
        final_state_via: FinalStateVia | str | None,
        forward_headers: Iterable[str],
    ) -> _FollowSettings:
        return cls(
            timeout,
            FinalStateVia.parse(final_state_via),
            frozenset(name.lower() for name in forward_headers),
        )


@contextlib.contextmanager
def _credentials_of(request: httpx.Request, names: frozenset[str]) -> Iterator[None]:
    """Within the block, polls to `request`'s origin carry its headers named in `names`."""
    forwarded = _FORWARDED.set(_forwarding(request, names))
    try:
        yield
    finally:
        _FORWARDED.reset(forwarded)


def _answer(
    response: httpx.Response, final: httpx.Response, request: httpx.Request
) -> httpx.Response:
    """The 202 itself when following ended on it, else the final result as a 200."""
    return response if final is response else _final(final, request)


class _CredentialForwarder(httpx.BaseTransport):
    def __init__(self, wrapped: httpx.BaseTransport) -> None:
        self.wrapped = wrapped

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.wrapped.handle_request(_with_credentials(request))

    def close(self) -> None:
        self.wrapped.close()


class _AsyncCredentialForwarder(httpx.AsyncBaseTransport):
    def __init__(self, wrapped: httpx.AsyncBaseTransport) -> None:
        self.wrapped = wrapped

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.wrapped.handle_async_request(_with_credentials(request))

    async def aclose(self) -> None:
        await self.wrapped.aclose()


def _final(final: httpx.Response, request: httpx.Request) -> httpx.Response:
    # httpx already decoded the body: the encoding headers would describe other bytes.
    headers = [
        (k, v)
        for k, v in final.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(200, headers=headers, content=final.content, request=request)


def _failure(error: OpsClientError, request: httpx.Request) -> httpx.Response:
    """An opsclient error as the response the caller's httpx code will check."""
    if isinstance(error, ConnectionFailed) and isinstance(error.__cause__, httpx.TransportError):
        raise type(error.__cause__)(str(error), request=request) from error
    problem: dict[str, Any]
    if isinstance(error, OperationFailed):
        problem = {
            "type": f"{_PROBLEM_TYPE}operation-failed",
            "title": "Operation failed",
            "status": 422,
            "operationStatus": "Failed",
            "error": dict(error.error),
        }
    elif isinstance(error, OperationCanceled):
        problem = {
            "type": f"{_PROBLEM_TYPE}operation-canceled",
            "title": "Operation canceled",
            "status": 409,
            "operationStatus": "Canceled",
        }
    elif isinstance(error, OperationTimeout):
        problem = {
            "type": f"{_PROBLEM_TYPE}wait-timeout",
            "title": "Still running when the wait timed out",
            "status": 504,
        }
        if error.status is not None:
            problem["operationStatus"] = error.status.state.value
            problem["statusUrl"] = error.status.url
    elif isinstance(error, HTTPStatusError):
        problem = {**error.problem, "status": error.status_code}
    else:  # ProtocolError and the like: the upstream answered something unusable
        problem = {"title": "Bad answer while following the operation", "status": 502}
    problem.setdefault("detail", str(error))
    problem["message"] = problem["detail"]
    response = httpx.Response(
        int(problem["status"]),
        json=problem,
        headers={"content-type": "application/problem+json"},
        request=request,
        extensions={"opsclient.error": error},
    )
    return response


class OperationsTransport(httpx.BaseTransport):
    """A transport wrapper that answers each 202 with the operation's final result.

    `transport` is what actually sends (default: a plain `httpx.HTTPTransport()`);
    `timeout` bounds each followed request's wait; `polling`/`retry`/`clock` as for
    `OperationsClient`; `forward_headers` names the credential headers repeated on polls
    to the same origin. See the module docstring for failures and the opt-out.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        polling: PollingPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        final_state_via: FinalStateVia | str | None = None,
        forward_headers: Iterable[str] = FORWARDED_HEADERS,
    ) -> None:
        self._wrapped = transport or httpx.HTTPTransport()
        self._settings = _FollowSettings.of(timeout, final_state_via, forward_headers)
        self._client = OperationsClient(
            transport=_CredentialForwarder(self._wrapped), polling=polling, retry=retry, clock=clock
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; a 202 comes back as the final result (or a failure response)."""
        response = self._wrapped.handle_request(request)
        if not _worth_following(request, response):
            return response
        try:
            response.read()
        finally:
            response.close()
        response.request = request
        settings = self._settings
        try:
            with _credentials_of(request, settings.forward):
                final = self._client.follow_response(
                    response,
                    timeout=settings.timeout,
                    accept=_accept(request),
                    final_state_via=settings.final_state_via,
                )
        except OpsClientError as error:
            return _failure(error, request)
        return _answer(response, final, request)

    def close(self) -> None:
        """Close the polling client and the wrapped transport."""
        self._client.close()


class AsyncOperationsTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of `OperationsTransport`, for `httpx.AsyncClient`."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        polling: PollingPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        final_state_via: FinalStateVia | str | None = None,
        forward_headers: Iterable[str] = FORWARDED_HEADERS,
    ) -> None:
        self._wrapped = transport or httpx.AsyncHTTPTransport()
        self._settings = _FollowSettings.of(timeout, final_state_via, forward_headers)
        self._client = AsyncOperationsClient(
            transport=_AsyncCredentialForwarder(self._wrapped),
            polling=polling,
            retry=retry,
            clock=clock,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; a 202 comes back as the final result (or a failure response)."""
        response = await self._wrapped.handle_async_request(request)
        if not _worth_following(request, response):
            return response
        try:
            await response.aread()
        finally:
            await response.aclose()
        response.request = request
        settings = self._settings
        try:
            with _credentials_of(request, settings.forward):
                final = await self._client.follow_response(
                    response,
                    timeout=settings.timeout,
                    accept=_accept(request),
                    final_state_via=settings.final_state_via,
                )
        except OpsClientError as error:
            return _failure(error, request)
        return _answer(response, final, request)

    async def aclose(self) -> None:
        """Close the polling client and the wrapped transport."""
        await self._client.aclose()
