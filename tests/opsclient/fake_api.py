"""A small stand-in for the operations API, served over a real socket for the CLI tests.

It speaks the API of issue 3 (202 + Location + Retry-After, the monitor with progress,
303 to the result, problem details, Idempotency-Key, DELETE to cancel, a list) with
scripted kinds: `report` (finishes after two polls), `fails`, `slow` (never finishes).
POSTs under /hooks/ are recorded as webhook deliveries; other unknown paths answer 404.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

POLLS_BEFORE_DONE = 2


@dataclass
class FakeOperation:
    id: str
    kind: str
    input: Any
    polls: int = 0
    state: str = "Running"


@dataclass
class FakeOperationsState:
    operations: dict[str, FakeOperation] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    webhooks: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    # -- plumbing --------------------------------------------------------------------------

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            is_problem = status >= 400 and isinstance(body, dict) and "title" in body
            kind = "application/problem+json" if is_problem else "application/json"
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _problem(self, status: int, title: str, detail: str) -> None:
        self._send(
            status, {"type": "about:blank", "title": title, "status": status, "detail": detail}
        )

    def _record(self) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(
                (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            )

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _parts(self) -> list[str]:
        return [p for p in self.path.split("?")[0].split("/") if p]

    # -- endpoints -------------------------------------------------------------------------

    def do_POST(self) -> None:
        self._record()
        parts = self._parts()
        if parts[:1] == ["hooks"]:
            # A webhook receiver: keep what arrived, acknowledge it.
            raw_hook = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with self.server.state.lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                self.server.state.webhooks.append((headers, raw_hook))
            return self._send(204)
        if parts[:2] != ["api", "operations"] or len(parts) != 3:
            return self._problem(404, "Not found", f"no route for POST {self.path}")
        kind = parts[2]
        if kind not in ("report", "fails", "slow"):
            return self._problem(404, "Unknown operation kind", f"there is no kind {kind!r}")
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            body = json.loads(raw)
        except ValueError:
            return self._problem(400, "Invalid JSON", "the body is not JSON")
        if kind == "report" and not (isinstance(body, dict) and isinstance(body.get("rows"), int)):
            return self._problem(400, "Invalid input", "rows: must be an integer >= 1")
        state = self.server.state
        key = self.headers.get("Idempotency-Key")
        with state.lock:
            if key and key in state.keys:
                operation = state.operations[state.keys[key]]
            else:
                operation = FakeOperation(f"op{next(state.ids)}", kind, body)
                state.operations[operation.id] = operation
                if key:
                    state.keys[key] = operation.id
        base, op = self._base(), operation.id
        status_uri = f"{base}/runtime/webhooks/durabletask/instances/{op}?taskHub=Hub"
        self._send(
            202,
            {
                "id": op,
                "statusQueryGetUri": status_uri,
                "sendEventPostUri": f"{base}/runtime/webhooks/durabletask/instances/{op}"
                "/raiseEvent/{eventName}?taskHub=Hub",
                "terminatePostUri": f"{base}/runtime/webhooks/durabletask/instances/{op}"
                "/terminate?reason={text}&taskHub=Hub",
                "operationUri": f"{base}/api/operations/{op}",
                "resultUri": f"{base}/api/operations/{op}/result",
            },
            {"Location": status_uri, "Retry-After": "0"},
        )

    def do_GET(self) -> None:
        self._record()
        parts = self._parts()
        if parts == ["api", "operations"]:
            with self.server.state.lock:
                items = [self._status(o) for o in self.server.state.operations.values()]
            return self._send(200, {"value": items})
        if parts[:2] != ["api", "operations"] or len(parts) not in (3, 4):
            return self._problem(404, "Not found", f"no route for GET {self.path}")
        operation = self.server.state.operations.get(parts[2])
        if operation is None:
            return self._problem(404, "Unknown operation", f"no operation {parts[2]}")
        if len(parts) == 4:
            if operation.state != "Succeeded":
                return self._problem(404, "Not ready", f"operation is {operation.state}")
            return self._send(200, {"rows": operation.input["rows"], "kind": operation.kind})
        with self.server.state.lock:
            if operation.state == "Running":
                operation.polls += 1
                if operation.kind == "report" and operation.polls > POLLS_BEFORE_DONE:
                    operation.state = "Succeeded"
                if operation.kind == "fails" and operation.polls > 1:
                    operation.state = "Failed"
        if operation.state == "Succeeded":
            return self._send(303, None, {"Location": f"/api/operations/{operation.id}/result"})
        return self._send(200, self._status(operation), {"Retry-After": "0"})

    def do_DELETE(self) -> None:
        self._record()
        parts = self._parts()
        operation = self.server.state.operations.get(parts[-1]) if len(parts) == 3 else None
        if operation is None:
            return self._problem(404, "Unknown operation", f"no operation at {self.path}")
        with self.server.state.lock:
            if operation.state != "Running":
                return self._problem(409, "Already finished", f"operation is {operation.state}")
            operation.state = "Canceled"
        self._send(202, self._status(operation))

    def _status(self, operation: FakeOperation) -> dict[str, Any]:
        fraction = min(1.0, operation.polls / (POLLS_BEFORE_DONE + 1))
        body: dict[str, Any] = {
            "id": operation.id,
            "kind": operation.kind,
            "status": operation.state,
            "progress": {"fraction": fraction, "message": f"step {operation.polls}"},
        }
        if operation.state == "Failed":
            body["error"] = {
                "type": "about:blank",
                "title": "Operation failed",
                "status": 500,
                "detail": "partition 3 could not be generated",
            }
        return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        # Port 0: the kernel picks a free port, with no window for another process to take it.
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = FakeOperationsState()


@dataclass
class RunningFakeAPI:
    url: str
    state: FakeOperationsState


@contextmanager
def serve_fake_api() -> Iterator[RunningFakeAPI]:
    """Serve the fake API on a free port in a background thread."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield RunningFakeAPI(f"http://{host!s}:{port}", server.state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
