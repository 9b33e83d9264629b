"""The host's connections: bounded in number and in time, and calm when out of descriptors.

aiohttp's server leaves four things open that a long-running host needs closed:

- A client that trickles its request head never finishes it: aiohttp's keep-alive timer
  closes a connection whose handler is still waiting for a complete request head, from
  the connection's start and from the end of each response, so its `keepalive_timeout`
  is the header timeout (`ConnectionLimits.header_timeout`; also the idle keep-alive time).
- A body is read by the handler, with no deadline: `body_deadline_middleware` answers 408
  when it has not fully arrived `body_timeout` seconds after the head.
- Connections are not capped: `GuardedTCPSite` accepts them itself and answers those
  over `max_connections` with 503 (problem+json, Retry-After) and closes them.
- Out of file descriptors, asyncio's accept loop on CPython 3.11 logs one traceback per
  queued connection per event loop pass and schedules as many retries (measured: 1.6 MB of
  log in 5 s, growing): `GuardedTCPSite` pauses accepting for a moment instead, and logs
  it at most once a second with the count of what it did not log.

A request aiohttp cannot parse (a malformed request line or header) is answered by the
server before any handler: `ProblemRequestHandler` makes that answer problem+json too.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_request import BaseRequest

from durablehost.wire.client import PROBLEM_CONTENT_TYPE, problem_details

__all__ = [
    "ConnectionLimits",
    "GuardedTCPSite",
    "LogEverySecond",
    "ProblemRequestHandler",
    "body_deadline_middleware",
]

log = logging.getLogger(__name__)

# accept() errors that mean "out of descriptors or memory now", not "this connection".
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# How long accepting pauses after such an error: descriptors free up as connections end.
_ACCEPT_RETRY_SECONDS = 0.25
# Connections accepted per wake-up of the listening socket, so one burst cannot starve
# the requests already in progress.
_ACCEPTS_PER_WAKEUP = 64
# A refused connection: how long it may take to send its request head, and how many may
# be waiting at once (past that they are closed without an answer).
_REFUSAL_SECONDS = 1.0
_MAX_REFUSALS_WAITING = 64
_REFUSAL_HEAD_BYTES = 16 * 1024
_REFUSAL_RETRY_AFTER = 1


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a request may take to arrive and how many connections may be open."""

    # Seconds for a complete request head, from the connection's start or from the end of
    # the previous response; also how long an idle keep-alive connection stays open.
    # Above the 15 s idle time of aiohttp's and the SDK's client pools, so the server does
    # not close a connection a client is about to reuse.
    header_timeout: float = 20.0
    # Seconds for a whole request body once its head has arrived.
    body_timeout: float = 60.0
    # Open connections; one more is answered 503 and closed.
    max_connections: int = 1000
    # The listen queue: connections the kernel holds until they are accepted.
    backlog: int = 128


class LogEverySecond:
    """Log a repeated message at most once a second, saying how many were not logged."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last = -interval
        self._suppressed = 0

    def __call__(self, level: int, message: str, *args: Any) -> bool:
        """Log unless one was logged in the last interval; True if this one was."""
        now = time.monotonic()
        if now - self._last < self._interval:
            self._suppressed += 1
            return False
        if self._suppressed:
            message += " (%d more like it not logged in the last %.0fs)"
            args = (*args, self._suppressed, now - self._last)
        self._last, self._suppressed = now, 0
        self._logger.log(level, message, *args)
        return True


def _problem_bytes(status: int, detail: str) -> bytes:
    return json.dumps(problem_details(status, detail, message=detail)).encode()


def _problem(status: int, detail: str, *, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(
        status=status,
        body=_problem_bytes(status, detail),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
    response.force_close()
    return response


def body_deadline_middleware(body_timeout: float) -> Middleware:
    """Answer 408 when a request's body has not fully arrived `body_timeout` seconds after
    its head. The handlers read bodies themselves (each with its own size limit, some
    streaming); this only watches that the bytes keep coming, and cuts the handler off
    (it is waiting for them) when they do not."""

    @web.middleware
    async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        if not request.body_exists or task is None:
            return await handler(request)
        expired = False

        def expire() -> None:
            nonlocal expired
            # Whether the parser has seen the body's end, read by the handler or not: a
            # handler busy with a complete request is left alone.
            if not request.content.is_eof():
                expired = True
                task.cancel()

        timer = asyncio.get_running_loop().call_later(body_timeout, expire)
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if not expired:
                raise
            task.uncancel()
            return _problem(408, f"the request body did not arrive within {body_timeout:g} seconds")
        finally:
            timer.cancel()

    return body_deadline


class ProblemRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering what it refuses itself (a request it
    cannot parse) with problem+json instead of text/plain."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The response for a request aiohttp could not parse or handle."""
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            detail = "the host hit an unexpected error; the host log has the traceback"
        else:
            # A client's mistake (or a port scan): not worth a traceback in the host log.
            self.log_debug("Bad request from %s: %s", request.remote, message or exc)
            detail = f"the request could not be read: {message or HTTPStatus(status).phrase}"
        if request.writer.output_size > 0:
            # Part of a response went out already: the connection cannot carry another.
            raise ConnectionError("a response was already being sent")
        return _problem(status, detail)


class _Refusal(asyncio.Protocol):
    """A connection over the cap: read its request head, answer 503, close."""

    def __init__(self, on_done: Callable[[], None]) -> None:
        self._on_done = on_done
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._answered = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(_REFUSAL_SECONDS, self._give_up)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # the rest of a body: read and dropped, so closing does not reset
        self._head += data
        if b"\r\n\r\n" in self._head or len(self._head) > _REFUSAL_HEAD_BYTES:
            self._answer()

    def eof_received(self) -> bool | None:
        self._answer()
        return None

    def _answer(self) -> None:
        if self._answered or self._transport is None:
            return
        self._answered = True
        detail = "the host has too many open connections; try again shortly"
        body = _problem_bytes(503, detail)
        self._transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\n"
            + f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n".encode()
            + f"Content-Length: {len(body)}\r\nRetry-After: {_REFUSAL_RETRY_AFTER}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        # Half-close and keep reading for a moment: closing with unread request bytes
        # would reset the connection and could drop the answer on the client's side.
        if self._transport.can_write_eof():
            self._transport.write_eof()

    def _give_up(self) -> None:
        if not self._answered:
            self._answer()
            assert self._transport is not None
            self._timer = asyncio.get_running_loop().call_later(
                _REFUSAL_SECONDS, self._transport.close
            )
        elif self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None
        self._on_done()


class GuardedTCPSite(web.BaseSite):
    """An aiohttp TCP site that accepts connections itself: at most `max_connections`
    open (one more is answered 503 and closed), and out of file descriptors it pauses
    accepting instead of spinning, logging that at most once a second.

    `handler_factory` makes the protocol of each accepted connection (aiohttp's
    `runner.server`, or a ProblemRequestHandler on it); `open_connections` counts the
    connections it serves now.
    """

    __slots__ = (
        "_accept_errors",
        "_connecting",
        "_handler_factory",
        "_host",
        "_limits",
        "_open_connections",
        "_over_cap",
        "_port",
        "_refusing",
        "_sockets",
        "_tasks",
    )

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        limits: ConnectionLimits,
        handler_factory: Callable[[], asyncio.Protocol],
        open_connections: Callable[[], int],
    ) -> None:
        super().__init__(runner, backlog=limits.backlog)
        self._host = host
        self._port = port
        self._limits = limits
        self._handler_factory = handler_factory
        self._open_connections = open_connections
        self._sockets: list[socket.socket] = []
        self._connecting = 0
        self._refusing = 0
        self._accept_errors = LogEverySecond(log)
        self._over_cap = LogEverySecond(log)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        """The site's URL, as aiohttp names sites."""
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The port listened on (the one picked when 0 was asked for)."""
        if self._sockets:
            return int(self._sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        """Bind, listen and start accepting."""
        await super().start()
        loop = asyncio.get_running_loop()
        port = self._port
        for family, kind, proto, _, address in socket.getaddrinfo(
            self._host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(self._limits.backlog)
                sock.setblocking(False)
            except OSError:
                sock.close()
                self._close_sockets()
                raise
            self._sockets.append(sock)
            if port == 0:
                break  # another address family would get another free port
        for sock in self._sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)

    async def stop(self) -> None:
        """Stop accepting; connections already open are the runner's to close."""
        self._close_sockets()
        await super().stop()

    def _close_sockets(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._pause_accepting(sock, exc)
                return
            conn.setblocking(False)
            if self._open_connections() + self._connecting >= self._limits.max_connections:
                self._refuse(conn)
            else:
                self._connect(conn, self._handler_factory)

    def _pause_accepting(self, sock: socket.socket, exc: OSError) -> None:
        hint = ""
        if exc.errno in _OUT_OF_RESOURCES:
            hint = (
                "; open connections and files use up the process's descriptors: lower "
                "--max-connections or raise the limit (ulimit -n)"
            )
        self._accept_errors(
            logging.ERROR,
            "cannot accept connections on %s: %s%s; pausing %.2fs",
            self.name,
            exc.strerror or exc,
            hint,
            _ACCEPT_RETRY_SECONDS,
        )
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        loop.call_later(_ACCEPT_RETRY_SECONDS, self._resume_accepting, sock)

    def _resume_accepting(self, sock: socket.socket) -> None:
        if sock in self._sockets:  # not stopped meanwhile
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)

    def _refuse(self, conn: socket.socket) -> None:
        self._over_cap(
            logging.WARNING,
            "%d connections open (--max-connections): answering a new one 503",
            self._limits.max_connections,
        )
        if self._refusing >= _MAX_REFUSALS_WAITING:
            conn.close()  # a flood: no answer for these
            return
        self._refusing += 1

        def done() -> None:
            self._refusing -= 1

        self._connect(conn, lambda: _Refusal(done), counted=False)

    def _connect(
        self,
        conn: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        *,
        counted: bool = True,
    ) -> None:
        if counted:
            self._connecting += 1
        task = asyncio.get_running_loop().create_task(self._attach(conn, factory, counted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach(
        self, conn: socket.socket, factory: Callable[[], asyncio.Protocol], counted: bool
    ) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(factory, conn)
        except Exception as exc:  # the connection is gone or the loop is closing
            log.warning("dropping a connection that could not be set up: %r", exc)
            conn.close()
        finally:
            if counted:
                self._connecting -= 1
