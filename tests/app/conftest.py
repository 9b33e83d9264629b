"""Fixtures for the app's end-to-end tests: durablehost as a real process + real Azurite.

Each host gets its own task-hub file and its own blob containers, so hosts with
different settings (a short TTL for expiry) cannot see each other's operations.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.azurite import Azurite
from tests.support.hostproc import HostProcess, run_host_process
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "test-webhook-secret"
TERMINAL = {"Succeeded", "Failed", "Canceled"}


@dataclass
class AppHost:
    """A running app: its base URL, an HTTP client and the settings it was started with."""

    url: str
    http: httpx.Client
    settings: dict[str, str]
    process: HostProcess

    @property
    def api(self) -> str:
        return f"{self.url}/api/operations"

    def start(self, kind: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(f"{self.api}/{kind}", json=body, headers=headers)

    def wait_for(
        self,
        operation_id: str,
        states: set[str] = TERMINAL,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Poll the status monitor until the operation is in one of `states`."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.get(f"{self.api}/{operation_id}", params={"redirect": "false"})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in states:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{operation_id} still {body['status']} after {timeout}s")
            time.sleep(0.05)


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Call `check` until it returns something truthy (or raise after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@contextmanager
def run_app_host(tmp: Path, azurite: Azurite, **settings: str) -> Iterator[AppHost]:
    """`python -m durablehost start --app <repo>` on a free port until the block exits."""
    tag = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "OPS_RESULTS_CONTAINER": f"results-{tag}",
        "OPS_STATE_CONTAINER": f"state-{tag}",
        "OPS_RETRY_AFTER_SECONDS": "1",
        "OPS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "OPS_WEBHOOK_SCHEDULE": "*/1 * * * * *",
        "OPS_WEBHOOK_BACKOFF_SECONDS": "1",
        "OPS_WEBHOOK_TIMEOUT_SECONDS": "2",
        "OPS_OUTBOUND_ALLOW": "127.0.0.0/8,localhost,::1",  # the peers tests aim at are local
        **settings,
    }
    with (
        run_host_process(REPO, hub=tmp / f"hub-{tag}.sqlite3", env=env) as process,
        httpx.Client(timeout=30, follow_redirects=False) as http,
    ):
        yield AppHost(url=process.url, http=http, settings=env, process=process)


@pytest.fixture(scope="session")
def app_host(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[AppHost]:
    """The app with long TTLs, fast webhook ticks; shared by most tests."""
    with run_app_host(tmp_path_factory.mktemp("app"), azurite) as host:
        yield host


# ------------------------------------------------------------------- scripted HTTP peers


@dataclass
class Recorded:
    """One request a peer received."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """A real HTTP server on a free port that answers from a script and records requests."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    # status codes to answer with, in order; the last one repeats
    script: list[int] = field(default_factory=lambda: [200])
    payload: bytes = b""
    content_type: str = "application/octet-stream"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, recorded: Recorded) -> tuple[int, bytes]:
        with self.lock:
            self.requests.append(recorded)
            index = min(len(self.requests) - 1, len(self.script) - 1)
            return self.script[index], self.payload


@contextmanager
def run_peer(
    script: list[int], payload: bytes = b"", content_type: str = "text/plain"
) -> Iterator[Peer]:
    """Serve `payload` (on 2xx) answering statuses from `script`, recording every request."""
    port = free_port()
    peer = Peer(
        url=f"http://127.0.0.1:{port}", script=script, payload=payload, content_type=content_type
    )

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, data = peer.answer(
                Recorded(self.path, {k: v for k, v in self.headers.items()}, body)
            )
            data = data if 200 <= status < 300 else b"failure"
            self.send_response(status)
            self.send_header("Content-Type", peer.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()


def json_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON body, failing with the text if it is not JSON."""
    try:
        body: dict[str, Any] = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"not JSON: {response.status_code} {response.text[:300]}") from None
    return body
