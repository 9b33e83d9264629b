"""The host's connections over real sockets to a real host process
(durablehost.front.connections): a trickled request head or body is cut off within its
timeout while other clients are served, connections over --max-connections are answered
503, a request line aiohttp cannot parse is answered problem+json, and running out of
file descriptors pauses accepting with a log that stays small."""

from __future__ import annotations

import os
import resource
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.hostproc import HostProcess, run_host_process

pytestmark = pytest.mark.e2e

HTTP_APP = Path(__file__).parent / "apps" / "http_basic"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def host() -> Iterator[HostProcess]:
    """One host with short header and body timeouts."""
    args = ["--header-timeout", "1.5", "--body-timeout", "1.5"]
    with run_host_process(HTTP_APP, args=args) as process:
        yield process


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(0.2)
    return sock


def _read_all(sock: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing, or None if it is still open at `deadline`."""
    received = bytearray()
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return bytes(received)
        if not chunk:
            return bytes(received)
        received += chunk
    return None


def _served(url: str) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.get(f"{url}/api/hello/you")


def test_trickled_request_heads_are_closed_within_the_header_timeout(host: HostProcess) -> None:
    trickling = [_connect(host.port) for _ in range(30)]
    try:
        for sock in trickling:
            sock.sendall(b"GET /api/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # Meanwhile a normal client is served.
        assert _served(host.url).text == "Hello, you!"
        deadline = time.monotonic() + 15
        open_ones = list(trickling)
        header = 0
        while open_ones and time.monotonic() < deadline:
            # One more header line per round: the head never completes.
            for sock in list(open_ones):
                try:
                    sock.sendall(f"X-Slow-{header}: 1\r\n".encode())
                except OSError:
                    open_ones.remove(sock)  # reset by the host: closed
            header += 1
            readable, _, _ = select.select(open_ones, [], [], 0.2)
            for sock in readable:
                try:
                    closed = not sock.recv(65536)
                except OSError:
                    closed = True
                if closed:
                    open_ones.remove(sock)
        assert open_ones == [], f"{len(open_ones)} trickling connections still open"
        assert _served(host.url).status_code == 200
    finally:
        for sock in trickling:
            sock.close()


def test_a_trickled_body_is_answered_408_problem_json(host: HostProcess) -> None:
    with _connect(host.port) as sock:
        sock.sendall(
            b"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 1000\r\n\r\nonly the start"
        )
        answer = _read_all(sock, time.monotonic() + 15)
    assert answer is not None, "the host kept waiting for the body"
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert PROBLEM.encode() in head
    assert b"did not arrive within 1.5 seconds" in body


def test_connections_over_the_cap_are_answered_503_and_later_ones_served() -> None:
    # A host of its own: the default header timeout keeps the idle connections open.
    with run_host_process(HTTP_APP, args=["--max-connections", "40"]) as host:
        _fill_to_the_cap_and_back(host)


def _fill_to_the_cap_and_back(host: HostProcess) -> None:
    # Connections kept open after a served request (keep-alive) until one is refused.
    held: list[socket.socket] = []
    try:
        while True:
            sock = _connect(host.port)
            sock.settimeout(5)
            sock.sendall(b"GET /api/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = sock.recv(65536)
            if not answer.startswith(b"HTTP/1.1 200"):
                sock.close()
                break
            held.append(sock)
            assert len(held) <= 40, "served more connections than --max-connections"
        assert len(held) == 40
        assert answer.startswith(b"HTTP/1.1 503"), answer
        refused = _served(host.url)
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith(PROBLEM)
        assert refused.headers["retry-after"] == "1"
        assert "too many open connections" in refused.json()["detail"]
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 15
    while (status := _served(host.url).status_code) != 200:
        assert status == 503
        assert time.monotonic() < deadline, "the host kept refusing after the connections closed"
        time.sleep(0.05)
    assert "--max-connections" in host.logs()


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET /api/hello HTTP/1.1\r\nBad Header Line\r\n\r\n"],
    ids=["request-line", "header-line"],
)
def test_a_request_the_server_cannot_parse_is_answered_problem_json(
    host: HostProcess, request_bytes: bytes
) -> None:
    with _connect(host.port) as sock:
        sock.sendall(request_bytes)
        answer = _read_all(sock, time.monotonic() + 10)
    assert answer is not None
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", head  # HTTP/1.0 when the version is unreadable
    assert PROBLEM.encode() in head
    assert b'"detail": "the request could not be read' in body
    assert b"Traceback" not in host.logs().encode()


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs resource.prlimit (Linux)")
def test_out_of_file_descriptors_the_log_stays_small_and_accepting_resumes() -> None:
    with run_host_process(HTTP_APP) as host:
        assert _served(host.url).status_code == 200
        log_before = len(host.logs())
        # Room for a few connections only: the rest wait in the listen queue while
        # every accept() fails with EMFILE.
        limit = _open_descriptors(host.pid) + 5
        original = resource.prlimit(host.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(host.pid, resource.RLIMIT_NOFILE, (limit, original[1]))
        waiting: list[socket.socket] = []
        try:
            started = time.monotonic()
            waiting = [_connect(host.port) for _ in range(100)]
            # The second report of the same error says how many were not logged: the
            # host has been out of descriptors for over a second by then.
            host.wait_for_log("more like it not logged", timeout=30)
            elapsed = time.monotonic() - started
            grown = host.logs()[log_before:]
            reports = grown.count("cannot accept connections")
            assert reports <= elapsed + 2, grown
            assert "Traceback" not in grown
            assert "ulimit -n" in grown
            assert len(grown) < 20_000, f"{len(grown)} bytes of log in {elapsed:.1f}s"
        finally:
            for sock in waiting:
                sock.close()
            resource.prlimit(host.pid, resource.RLIMIT_NOFILE, original)
        deadline = time.monotonic() + 15
        while True:
            try:
                if _served(host.url).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the host did not accept again"
            time.sleep(0.05)
