"""The durable client's management calls, answered inside the host's process.

The SDK's `DurableOrchestrationClient` reaches the management API through its binding's
`rpcBaseUrl`, which points back at this host: every `client.start_new` in an HTTP starter
is a second, loopback HTTP request (aiohttp's client, a socket, HTTP parsing, a server
handler task), about 0.7 ms of host CPU per started orchestration. While a host runs, this
module swaps the three request functions the client module copies into every client
(`post_async_request`, `get_async_request`, `delete_async_request` of
`azure.durable_functions.models.DurableOrchestrationClient`) for wrappers that hand a call
for that host straight to its management API (durablehost.front.management.InProcessManagement):
same router, handlers, validation and problem+json errors, so the same status codes and
JSON bodies, with no socket.

It is an optimisation with a fallback: a call goes over HTTP as before (the SDK's own
function, unchanged) when its URL is not under a running host's `rpcBaseUrl`, or when it
runs on another event loop than that host's (a sync function calling `asyncio.run` in a
worker thread: the host's handlers must run on the host's loop). If a future SDK lacks
these names, nothing is swapped and every call goes over HTTP.

In-process, trace headers and the invocation id are passed along as headers the handlers
ignore, as they do over HTTP.

While swapped in, the module's `urlparse` is memoized too: `create_check_status_response`
parses the request URL and each management URL template (the same few strings every
time) 18 times per call, a third of its cost (~25 us of every HTTP starter).
`urlparse` is a pure function with an immutable result, so the memo changes nothing else.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping
from yarl import URL

from durablehost.front.management import DEFAULT_MAX_BODY_BYTES

if TYPE_CHECKING:
    from durablehost.front.management import InProcessManagement

__all__ = [
    "SDK_CLIENT_MODULE",
    "InProcessRequest",
    "register_management",
    "registered_base_urls",
    "unregister_management",
]

log = logging.getLogger(__name__)

SDK_CLIENT_MODULE = "azure.durable_functions.models.DurableOrchestrationClient"

_RequestFunction = Callable[..., Awaitable[list[Any]]]


class InProcessRequest:
    """A call aiohttp's client would have sent to `url`, as aiohttp's server would see it.

    The URL is parsed as the client parses it (yarl, encoding what needs encoding) and the
    Host header is the one it would send, so routing, `match_info`, `query` and the URLs
    built from the request come out exactly as over HTTP.
    """

    def __init__(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        absolute = URL(url)
        self.method = method.upper()
        # What the server builds from the request line.
        self.rel_url = URL.build(
            path=absolute.raw_path, query_string=absolute.raw_query_string, encoded=True
        )
        self.path = self.rel_url.path
        self.raw_path = absolute.raw_path_qs
        self.query: MultiMapping[str] = self.rel_url.query
        self.match_info: Mapping[str, str] = {}
        self.scheme = absolute.scheme
        all_headers = CIMultiDict(headers or {})
        all_headers.setdefault("Host", absolute.host_port_subcomponent or "")
        if body:
            # aiohttp's client declares the size of a bytes body.
            all_headers.setdefault("Content-Length", str(len(body)))
        self.host = all_headers["Host"]
        self.headers: Mapping[str, str] = CIMultiDictProxy(all_headers)
        raw_type = all_headers.get("Content-Type")
        # aiohttp's default when there is no Content-Type (RFC 2616).
        self.content_type = (
            raw_type.split(";", 1)[0].strip().lower() if raw_type else "application/octet-stream"
        )
        self._body = body
        self._max_body_bytes = max_body_bytes

    async def read(self) -> bytes:
        """The body; one over the limit fails as aiohttp's `Request.read` fails it."""
        if self._max_body_bytes and len(self._body) > self._max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(self._max_body_bytes)
        return self._body


@dataclass(frozen=True, slots=True)
class _Registration:
    base_url: str
    management: InProcessManagement
    loop: asyncio.AbstractEventLoop


class _Registry:
    """Running hosts by `rpcBaseUrl`, and the SDK functions swapped while there are any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Replaced, never mutated, so a lookup needs no lock.
        self._hosts: tuple[_Registration, ...] = ()
        self._originals: dict[str, Callable[..., Any]] = {}
        self._wrappers: dict[str, Callable[..., Any]] = {}

    def add(self, registration: _Registration) -> None:
        with self._lock:
            kept = tuple(h for h in self._hosts if h.base_url != registration.base_url)
            self._hosts = (*kept, registration)
            if not self._wrappers:
                self._swap_in()

    def remove(self, base_url: str) -> None:
        with self._lock:
            self._hosts = tuple(h for h in self._hosts if h.base_url != base_url)
            if not self._hosts and self._wrappers:
                self._swap_out()

    def base_urls(self) -> list[str]:
        return [h.base_url for h in self._hosts]

    def serving(self, url: str) -> _Registration | None:
        """The host that answers `url` on the running loop, if any."""
        hosts = self._hosts
        if not hosts:
            return None
        loop = asyncio.get_running_loop()
        for registration in hosts:
            if registration.loop is loop and url.startswith(registration.base_url):
                return registration
        return None

    def _swap_in(self) -> None:
        module = _sdk_client_module()
        if module is None:
            return
        originals = {name: getattr(module, name) for name in _WRAPPER_FACTORIES}
        wrappers = {
            name: factory(self, originals[name]) for name, factory in _WRAPPER_FACTORIES.items()
        }
        for name, wrapper in wrappers.items():
            setattr(module, name, wrapper)
        self._originals, self._wrappers = originals, wrappers

    def _swap_out(self) -> None:
        module = _sdk_client_module()
        if module is not None:
            for name, wrapper in self._wrappers.items():
                # Someone who swapped after us keeps theirs.
                if getattr(module, name, None) is wrapper:
                    setattr(module, name, self._originals[name])
        self._originals, self._wrappers = {}, {}


def _sdk_client_module() -> ModuleType | None:
    try:
        module = importlib.import_module(SDK_CLIENT_MODULE)
    except ImportError:
        return None
    if not all(callable(getattr(module, name, None)) for name in _WRAPPER_FACTORIES):
        log.debug("%s lacks the request functions; the durable client stays on HTTP", module)
        return None
    return module


def _headers(
    content_json: bool,
    trace_parent: str | None = None,
    trace_state: str | None = None,
    function_invocation_id: str | None = None,
) -> dict[str, str]:
    # The headers http_utils sends; the handlers ignore all but Content-Type.
    headers = {"Content-Type": "application/json"} if content_json else {}
    if trace_parent:
        headers["traceparent"] = trace_parent
    if trace_state:
        headers["tracestate"] = trace_state
    if function_invocation_id:
        headers["X-Azure-Functions-InvocationId"] = function_invocation_id
    return headers


async def _call(
    registration: _Registration,
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> tuple[int, Any]:
    request = InProcessRequest(
        method, url, body, headers, max_body_bytes=registration.management.max_body_bytes
    )
    status, payload = await registration.management.call(request)
    # As http_utils reads it: `response.json(content_type=None)`, None for an empty body.
    return status, json.loads(payload.decode("utf-8")) if payload.strip() else None


def _post_wrapper(registry: _Registry, original: _RequestFunction) -> _RequestFunction:
    async def post_async_request(
        url: str,
        data: Any = None,
        trace_parent: str | None = None,
        trace_state: str | None = None,
        function_invocation_id: str | None = None,
    ) -> list[Any]:
        registration = registry.serving(url)
        if registration is None:
            return await original(
                url,
                data,
                trace_parent=trace_parent,
                trace_state=trace_state,
                function_invocation_id=function_invocation_id,
            )
        # aiohttp's `json=data`: no body at all for None.
        body = b"" if data is None else json.dumps(data).encode("utf-8")
        headers = _headers(data is not None, trace_parent, trace_state, function_invocation_id)
        status, decoded = await _call(registration, "POST", url, body, headers)
        return [status, decoded]

    return post_async_request


def _get_wrapper(registry: _Registry, original: _RequestFunction) -> _RequestFunction:
    async def get_async_request(url: str, function_invocation_id: str | None = None) -> list[Any]:
        registration = registry.serving(url)
        if registration is None:
            return await original(url, function_invocation_id=function_invocation_id)
        headers = _headers(False, function_invocation_id=function_invocation_id)
        status, decoded = await _call(registration, "GET", url, b"", headers)
        return [status, "" if decoded is None else decoded]

    return get_async_request


def _delete_wrapper(registry: _Registry, original: _RequestFunction) -> _RequestFunction:
    async def delete_async_request(
        url: str, function_invocation_id: str | None = None
    ) -> list[Any]:
        registration = registry.serving(url)
        if registration is None:
            return await original(url, function_invocation_id=function_invocation_id)
        headers = _headers(False, function_invocation_id=function_invocation_id)
        status, decoded = await _call(registration, "DELETE", url, b"", headers)
        return [status, decoded]

    return delete_async_request


def _memoized(_registry: _Registry, original: Callable[..., Any]) -> Callable[..., Any]:
    return functools.lru_cache(maxsize=256)(original)


_WRAPPER_FACTORIES: dict[str, Callable[[_Registry, Callable[..., Any]], Callable[..., Any]]] = {
    "post_async_request": _post_wrapper,
    "get_async_request": _get_wrapper,
    "delete_async_request": _delete_wrapper,
    "urlparse": _memoized,
}

_registry = _Registry()


def register_management(base_url: str, management: InProcessManagement) -> None:
    """Answer durable client calls under `base_url` (the binding's `rpcBaseUrl`) with
    `management`, for clients on the running event loop, until unregister_management."""
    _registry.add(_Registration(base_url, management, asyncio.get_running_loop()))


def unregister_management(base_url: str) -> None:
    """Send calls under `base_url` over HTTP again; the last one out restores the SDK."""
    _registry.remove(base_url)


def registered_base_urls() -> list[str]:
    """The `rpcBaseUrl`s answered in-process right now."""
    return _registry.base_urls()
