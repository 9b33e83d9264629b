"""An ARM-style API over a real socket, with faults on demand, for follow/transport/poller tests.

Every start answers 202 (201 for a PUT) naming a status monitor; the monitor answers
`{"status": "Running"}` once, then the final status. Each route exercises one final-state
rule (see opsclient.final_state):

- `PUT /things/{name}` -> 201 + Azure-AsyncOperation; result: GET of the original URI;
- `PATCH /things/{name}` -> 202 + Operation-Location; result: the original URI;
- `POST /things/{name}/export` -> 202 + Operation-Location + Location `/exports/{op}`;
- `POST /reports` -> 202 + Operation-Location + Location `/elsewhere`; the final status has
  `resourceLocation` `/reports/{op}/result` (which wins over Location);
- `POST /things/{name}/archive` -> the final status body has `properties` (for
  final-state-via azure-async-operation / operation-location: no final GET);
- `POST /things/{name}/restart` -> for final-state-via original-uri (GET answers there);
- `DELETE /things/{name}` -> 202 + Operation-Location; no result URL: the status body;
- `POST /things/{name}/explode` -> Failed with an ARM error;
- `POST /orchestrators/hello` -> a Durable Functions check-status 202 (Location + body);
- `POST /api/operations/{kind}` -> like `POST /reports`, for `start`/`run` (Idempotency-Key
  honoured: the same key answers the same operation);
- `GET /plain` -> a plain 200; `GET /elsewhere` -> `{"elsewhere": true}`;
- `POST /reports?cross=1` -> `resourceLocation` on another origin (localhost).

Results carry an ETag and answer 304 to a matching If-None-Match. A thing named `lazy-*`
answers 404 (with Retry-After: 0) to its first two GETs after success. Faults: push
`(method, path prefix, action)` on `state.faults`; actions are an HTTP status (e.g. 429,
503, answered with Retry-After: 0) or "drop" (the request is handled, then the connection
closed without an answer). `state.required_token` makes every request need that bearer
token (401 otherwise).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from opsclient import PollingPolicy

FAST = PollingPolicy(
    min_interval=0.01, max_interval=0.05, default_interval=0.01, default_max_interval=0.05
)
"""Polling fast enough for this local API, which finishes an operation after one poll."""


@dataclass
class ArmOperation:
    id: str
    final: dict[str, Any]
    polls: int = 0


@dataclass
class ArmState:
    operations: dict[str, ArmOperation] = field(default_factory=dict)
    things: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    faults: list[tuple[str, str, int | str]] = field(default_factory=list)
    required_token: str | None = None
    lazy_gets: dict[str, int] = field(default_factory=dict)

    def requests_to(self, method: str, prefix: str) -> list[dict[str, str]]:
        """Headers of every recorded request of `method` whose path starts with `prefix`."""
        with self.lock:
            return [h for m, p, h in self.requests if m == method and p.startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    server: _ArmServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------------

    @property
    def state(self) -> ArmState:
        return self.server.state

    def _send(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _base(self) -> str:
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        return f"http://{host}"

    def _path(self) -> str:
        return urlsplit(self.path).path

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        return json.loads(raw) if raw.strip() else None

    def _fault(self) -> int | str | None:
        with self.state.lock:
            for index, (method, prefix, action) in enumerate(self.state.faults):
                if method == self.command and self._path().startswith(prefix):
                    del self.state.faults[index]
                    return action
        return None

    def _handle(self) -> None:
        with self.state.lock:
            self.state.requests.append(
                (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            )
        body = self._body() if self.command in ("POST", "PUT", "PATCH") else None
        fault = self._fault()
        if isinstance(fault, int):
            return self._send(
                fault, {"title": f"fault {fault}", "status": fault}, {"Retry-After": "0"}
            )
        required = self.state.required_token
        if required and self.headers.get("Authorization") != f"Bearer {required}":
            return self._send(401, {"error": {"code": "Unauthorized", "message": "bad token"}})
        if fault == "drop":
            # Handled, but the answer is lost: the client sees the connection close.
            self.wfile = io.BytesIO()
            self.close_connection = True
        self._route(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _route(self, body: Any) -> None:
        parts = [p for p in self._path().split("/") if p]
        if self.command == "GET":
            return self._get(parts)
        if parts[:2] == ["api", "operations"] and len(parts) == 3 and self.command == "POST":
            # The start endpoint, ARM style: Operation-Location names the status monitor.
            op = self._start(
                {"status": "Succeeded", "resourceLocation": "/reports/{op}/result"},
                result={"rows": (body or {}).get("rows", 0)},
            )
            return self._accepted(op, location="/elsewhere")
        if parts == ["reports"] and self.command == "POST":
            where = "/reports/{op}/result"
            if "cross=1" in self.path:  # the result on another origin (a blob store, say)
                where = self._base().replace("127.0.0.1", "localhost") + where
            op = self._start(
                {"status": "Succeeded", "resourceLocation": where},
                result={"rows": (body or {}).get("rows", 0)},
            )
            return self._accepted(op, location=f"{self._base()}/elsewhere")
        if parts == ["orchestrators", "hello"] and self.command == "POST":
            op = self._start({"durable": True})
            status = f"{self._base()}/runtime/webhooks/durabletask/instances/{op.id}?code=SYS"
            return self._send(
                202,
                {"id": op.id, "statusQueryGetUri": status},
                {"Location": status, "Retry-After": "0"},
            )
        if len(parts) >= 2 and parts[0] == "things":
            return self._thing(parts[1], parts[2] if len(parts) > 2 else None, body)
        return self._send(404, {"title": "Not found", "status": 404})

    def _start(self, final: dict[str, Any], result: Any = None) -> ArmOperation:
        key = self.headers.get("Idempotency-Key")
        with self.state.lock:
            if key and key in self.state.keys:
                return self.state.operations[self.state.keys[key]]
            op = ArmOperation(f"op{next(self.state.ids)}", final)
            self.state.operations[op.id] = op
            if key:
                self.state.keys[key] = op.id
            if result is not None:
                self.state.things[f"report-{op.id}"] = result
        return op

    def _accepted(self, op: ArmOperation, *, location: str | None = None, code: int = 202) -> None:
        headers = {"Operation-Location": f"/operations/{op.id}", "Retry-After": "0"}
        if location:
            headers["Location"] = location
        self._send(code, {"status": "Running"} if code == 201 else None, headers)

    def _thing(self, name: str, action: str | None, body: Any) -> None:
        succeeded: dict[str, Any] = {"status": "Succeeded"}
        if action is None and self.command == "PUT":
            op = self._start(succeeded)
            with self.state.lock:
                self.state.things[name] = {"name": name, **(body or {})}
            self.send_response(201)
            payload = json.dumps({"name": name, "provisioningState": "Accepted"}).encode()
            self.send_header("Azure-AsyncOperation", f"{self._base()}/operations/{op.id}")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return None
        if action is None and self.command == "PATCH":
            with self.state.lock:
                self.state.things.setdefault(name, {"name": name}).update(body or {})
            return self._accepted(self._start(succeeded))
        if action is None and self.command == "DELETE":
            with self.state.lock:
                self.state.things.pop(name, None)
            return self._accepted(self._start({**succeeded, "name": f"delete {name}"}))
        if action == "export":
            op = self._start(succeeded)
            with self.state.lock:
                self.state.things[f"export-{op.id}"] = {"exported": name}
            return self._accepted(op, location=f"/exports/{op.id}")
        if action == "archive":
            op = self._start({**succeeded, "properties": {"archived": name}})
            with self.state.lock:
                self.state.things[f"export-{op.id}"] = {"exported-by-archive": name}
            return self._accepted(op, location=f"/exports/{op.id}")
        if action == "restart":
            return self._accepted(self._start(succeeded), location="/elsewhere")
        if action == "explode":
            failed = {"status": "Failed", "error": {"code": "Boom", "message": f"{name} exploded"}}
            return self._accepted(self._start(failed))
        return self._send(404, {"title": "Not found", "status": 404})

    def _get(self, parts: list[str]) -> None:
        if parts == ["plain"]:
            return self._send(200, {"plain": True})
        if parts == ["elsewhere"]:
            return self._result({"elsewhere": True})
        if len(parts) == 2 and parts[0] == "operations":
            return self._status(parts[1])
        if parts[:4] == ["runtime", "webhooks", "durabletask", "instances"] and len(parts) == 5:
            return self._durable(parts[4])
        if len(parts) == 3 and parts[0] == "things" and parts[2] == "restart":
            return self._result({"restarted": parts[1]})
        if len(parts) == 2 and parts[0] == "exports":
            return self._result(self.state.things.get(f"export-{parts[1]}"))
        if len(parts) == 3 and parts[0] == "reports" and parts[2] == "result":
            return self._result(self.state.things.get(f"report-{parts[1]}"))
        if len(parts) == 2 and parts[0] == "things":
            name = parts[1]
            if name.startswith("lazy-"):
                with self.state.lock:
                    seen = self.state.lazy_gets[name] = self.state.lazy_gets.get(name, 0) + 1
                if seen <= 2:
                    return self._send(
                        404, {"title": "Not found yet", "status": 404}, {"Retry-After": "0"}
                    )
            return self._result(self.state.things.get(name))
        return self._send(404, {"title": "Not found", "status": 404})

    def _poll(self, op_id: str) -> ArmOperation | None:
        with self.state.lock:
            op = self.state.operations.get(op_id)
            if op is not None:
                op.polls += 1
        return op

    def _status(self, op_id: str) -> None:
        op = self._poll(op_id)
        if op is None:
            return self._send(404, {"error": {"code": "NotFound", "message": "no operation"}})
        if op.polls < 2:
            return self._send(200, {"id": op.id, "status": "Running"}, {"Retry-After": "0"})
        final = {
            k: v.replace("{op}", op.id) if isinstance(v, str) else v for k, v in op.final.items()
        }
        return self._send(200, {"id": op.id, **final})

    def _durable(self, op_id: str) -> None:
        op = self._poll(op_id)
        if op is None:
            return self._send(404, None)
        body = {"instanceId": op.id, "name": "hello", "runtimeStatus": "Running"}
        if op.polls < 2:
            location = f"{self._base()}/runtime/webhooks/durabletask/instances/{op.id}?code=SYS"
            return self._send(202, body, {"Location": location, "Retry-After": "0"})
        return self._send(
            200, {**body, "runtimeStatus": "Completed", "output": ["Tokyo", "Seattle"]}
        )

    def _result(self, value: Any) -> None:
        if value is None:
            return self._send(404, {"title": "Not found", "status": 404})
        data = json.dumps(value).encode()
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self._send(200, value, {"ETag": etag, "X-Result": "yes"})


class _ArmServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = ArmState()


@dataclass
class RunningArmAPI:
    url: str
    state: ArmState

    @property
    def other_origin(self) -> str:
        """The same server under another host name: a different origin for credentials."""
        return self.url.replace("127.0.0.1", "localhost")


@contextmanager
def serve_arm_api() -> Iterator[RunningArmAPI]:
    """Serve the ARM-style API on a free port in a background thread."""
    server = _ArmServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield RunningArmAPI(f"http://127.0.0.1:{server.server_address[1]}", server.state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
