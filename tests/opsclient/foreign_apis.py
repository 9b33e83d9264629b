"""Foreign long-running-operation APIs, each a real HTTP server on a free port.

None of them is ours: they speak the dialects opsclient has to read from other people's
services. Each job's script comes in its start request, so a test says what the server
will answer:

- `SeedStyleAPI`: POST -> 202 + a relative `Location: /v1/reports/<id>` + `{id, status:
  "pending"}`; the status answers 200 + Retry-After with a status word while pending, then
  303 to `/v1/reports/<id>/result`; 404 for an unknown id, 410 once a job's TTL passed.
- `RequestReplyAPI`: Microsoft's Asynchronous Request-Reply sample: `200 {"status": "In
  progress"}`, then 302 to the resource; a failed job keeps its error at the status URL
  with a 4xx.
- `ArmAPI`: 202 + `Azure-AsyncOperation` + `Location`, provider-specific status words,
  the ARM error shape, and a resource read through `properties.provisioningState`.
- `GoogleOperationsAPI`: `{"name", "done", "metadata", "response" | "error"}` and
  `:cancel`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Answer:
    """A reply: a dict/list body goes out as JSON, a str as text/plain."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


class ForeignAPI(Protocol):
    def answer(self, request: Request, base: str) -> Answer: ...


@contextmanager
def serve(api: ForeignAPI) -> Iterator[str]:
    """Serve `api` on a free port in a thread; yields its base URL."""

    base_url: list[str] = []  # filled once the server has its port

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = urlsplit(self.path)
            request = Request(
                self.command,
                parts.path,
                dict(parse_qsl(parts.query)),
                json.loads(raw) if raw.strip() else None,
            )
            answer = api.answer(request, base_url[0])
            if isinstance(answer.body, str):
                data, kind = answer.body.encode(), "text/plain; charset=utf-8"
            elif answer.body is None:
                data, kind = b"", None
            else:
                data, kind = json.dumps(answer.body).encode(), "application/json"
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.content_type or kind:
                self.send_header("Content-Type", answer.content_type or str(kind))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    # Port 0: the kernel picks a free port, with no window for another process to take it.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    base_url.append(f"http://{host!s}:{port}")
    # A short poll interval: shutdown() waits up to one interval, once per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield base_url[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Job:
    """One scripted job: the words its status answers in turn, then how it ends."""

    id: str
    input: dict[str, Any]
    words: list[str]
    end: str = "Succeeded"  # or Failed / Canceled
    polls: int = 0
    created: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return self.polls >= len(self.words)

    def poll(self) -> str | None:
        """The next word while running; None once the job has ended."""
        if self.finished:
            return None
        word = self.words[self.polls]
        self.polls += 1
        return word

    @property
    def error_message(self) -> str:
        return str(self.input.get("error", "the job failed"))


class _Jobs:
    def __init__(self, default_words: list[str]) -> None:
        self.jobs: dict[str, Job] = {}
        self.default_words = default_words
        self._ids = itertools.count(1)
        self.lock = threading.Lock()

    def start(self, body: Any) -> Job:
        spec = body if isinstance(body, dict) else {}
        with self.lock:
            job = Job(
                f"{next(self._ids)}",
                spec,
                list(spec.get("words", self.default_words)),
                str(spec.get("end", "Succeeded")),
            )
            self.jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)


class SeedStyleAPI:
    """Seed-style reports: lower-case words, relative links, 303 to the result, a TTL."""

    def __init__(self, *, ttl_seconds: float = 3600.0) -> None:
        self.ttl_seconds = ttl_seconds
        self.jobs = _Jobs(["pending", "processing"])

    def answer(self, request: Request, base: str) -> Answer:
        parts = [p for p in request.path.split("/") if p]
        # Also mounted where opsclient's `run` posts, so `run` drives it end to end.
        if request.method == "POST" and parts in (
            ["v1", "reports"],
            ["api", "operations", "report"],
        ):
            new = self.jobs.start(request.body)
            return Answer(
                202,
                {"id": new.id, "status": "pending"},
                {"Location": f"/v1/reports/{new.id}", "Retry-After": "0"},
            )
        if request.method != "GET" or parts[:2] != ["v1", "reports"] or len(parts) not in (3, 4):
            return Answer(404, {"message": f"no route for {request.method} {request.path}"})
        job = self.jobs.get(parts[2])
        if job is None:
            return Answer(404, {"message": f"no report {parts[2]}"})
        if time.monotonic() - job.created >= self.ttl_seconds:
            return Answer(410, {"message": f"report {job.id} expired"})
        if len(parts) == 4:
            if not job.finished or job.end != "Succeeded":
                return Answer(404, {"message": f"report {job.id} has no result"})
            return Answer(200, {"id": job.id, "rows": job.input.get("rows")})
        word = job.poll()
        if word is not None:
            return Answer(200, {"id": job.id, "status": word}, {"Retry-After": "0"})
        if job.end == "Failed":
            return Answer(200, {"id": job.id, "status": "failed", "error": job.error_message})
        if job.end == "Canceled":
            return Answer(200, {"id": job.id, "status": "cancelled"})
        return Answer(303, {"id": job.id, "status": "done"}, {"Location": f"{job.id}/result"})


class RequestReplyAPI:
    """Microsoft's Asynchronous Request-Reply sample: "In progress", 302, errors kept at
    the status URL with a 4xx (the job's `errorStatus`, in the job's `errorShape`)."""

    def __init__(self) -> None:
        self.jobs = _Jobs(["In progress", "In progress"])

    def answer(self, request: Request, base: str) -> Answer:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "POST" and parts == ["api", "jobs"]:
            new = self.jobs.start(request.body)
            return Answer(202, None, {"Location": f"{base}/api/jobs/status/{new.id}"})
        if parts[:3] == ["api", "jobs", "status"] and len(parts) == 4:
            job = self.jobs.get(parts[3])
            if job is None:
                return Answer(404, {"error": {"code": "NotFound", "message": "no such job"}})
            word = job.poll()
            if word is not None:
                return Answer(200, {"status": word}, {"Retry-After": "0"})
            if job.end == "Failed":
                return self._failure(job)
            return Answer(302, None, {"Location": f"../{job.id}"})
        if parts[:2] == ["api", "jobs"] and len(parts) == 3 and (job := self.jobs.get(parts[2])):
            return Answer(200, {"id": job.id, "rows": job.input.get("rows")})
        return Answer(404, {"error": {"code": "NotFound", "message": request.path}})

    def _failure(self, job: Job) -> Answer:
        code = int(job.input.get("errorStatus", 400))
        message, shape = job.error_message, job.input.get("errorShape", "arm")
        if shape == "text":
            return Answer(code, message)
        if shape == "string":
            return Answer(code, {"error": message})
        if shape == "message":
            return Answer(code, {"message": message})
        if shape == "problem":
            problem = {"type": "about:blank", "title": "Job failed", "status": code}
            return Answer(
                code, {**problem, "detail": message}, content_type="application/problem+json"
            )
        error = {"code": "JobFailed", "message": message, "innererror": {"code": "RowInvalid"}}
        return Answer(code, {"error": error})


_ARM_PROVIDER = "/subscriptions/sub1/resourceGroups/rg1/providers/Contoso.Widgets"
_API_VERSION = "2024-01-01"


class ArmAPI:
    """An ARM resource provider: PUT a widget -> 202 + Azure-AsyncOperation + Location."""

    def __init__(self) -> None:
        self.jobs = _Jobs(["Accepted", "Updating"])
        self.widgets: dict[str, Job] = {}

    def answer(self, request: Request, base: str) -> Answer:
        path = request.path
        if not path.startswith(_ARM_PROVIDER + "/"):
            return self._error(404, "InvalidResourceType", f"no provider route {path}")
        rest = path.removeprefix(_ARM_PROVIDER + "/").split("/")
        if request.method == "PUT" and rest[0] == "widgets" and len(rest) == 2:
            new = self.jobs.start(request.body)
            self.widgets[rest[1]] = new
            where = f"{base}{_ARM_PROVIDER}/locations/westus"
            return Answer(
                202,
                None,
                {
                    "Azure-AsyncOperation": (
                        f"{where}/operationStatuses/{new.id}?api-version={_API_VERSION}"
                    ),
                    "Location": f"{where}/operationResults/{new.id}?api-version={_API_VERSION}",
                    "Retry-After": "0",
                },
            )
        if request.method == "GET" and rest[0] == "widgets" and len(rest) == 2:
            widget = self.widgets.get(rest[1])
            if widget is None:
                return self._error(404, "ResourceNotFound", f"widget {rest[1]} not found")
            word = widget.poll() or widget.end
            return Answer(200, self._widget(rest[1], word))
        if rest[:2] == ["locations", "westus"] and len(rest) == 4:
            job = self.jobs.get(rest[3])
            if job is None:
                return self._error(404, "OperationNotFound", f"operation {rest[3]} not found")
            if rest[2] == "operationStatuses":
                return self._operation_status(job)
            if rest[2] == "operationResults":
                return self._operation_result(job)
        return self._error(404, "NotFound", f"no route {request.method} {path}")

    def _operation_status(self, job: Job) -> Answer:
        body: dict[str, Any] = {"id": job.id, "name": job.id, "startTime": "2026-01-01T00:00:00Z"}
        word = job.poll()
        if word is not None:
            return Answer(200, {**body, "status": word}, {"Retry-After": "0"})
        body["status"] = job.end
        if job.end == "Failed":
            body["error"] = self._error_object(job)
        return Answer(200, body)

    def _operation_result(self, job: Job) -> Answer:
        if not job.finished:
            job.poll()
            return Answer(202, None, {"Retry-After": "0"})
        if job.end == "Failed":
            return Answer(400, {"error": self._error_object(job)})
        return Answer(200, self._widget("w1", job.end))

    def _error_object(self, job: Job) -> dict[str, Any]:
        # ARM puts the general message on top and the cause in `details`.
        return {
            "code": "DeploymentFailed",
            "message": "At least one resource operation failed.",
            "details": [{"code": "QuotaExceeded", "message": job.error_message}],
        }

    def _widget(self, name: str, state: str) -> dict[str, Any]:
        return {
            "id": f"{_ARM_PROVIDER}/widgets/{name}",
            "name": name,
            "type": "Contoso.Widgets/widgets",
            "properties": {"provisioningState": state, "size": 3},
        }

    def _error(self, status: int, code: str, message: str) -> Answer:
        return Answer(status, {"error": {"code": code, "message": message}})


class GoogleOperationsAPI:
    """Google-style long-running operations (AIP-151) with `:cancel` (AIP-151 / gRPC code 1)."""

    def __init__(self) -> None:
        self.jobs = _Jobs(["running", "running"])
        self.canceled: set[str] = set()

    def answer(self, request: Request, base: str) -> Answer:
        path = request.path
        if request.method == "POST" and path == "/v1/reports:generate":
            new = self.jobs.start(request.body)
            return Answer(200, self._operation(new, done=False))
        if not path.startswith("/v1/operations/"):
            return self._error(404, "NOT_FOUND", f"no route {path}")
        name = path.removeprefix("/v1/operations/")
        if request.method == "POST" and name.endswith(":cancel"):
            job = self.jobs.get(name.removesuffix(":cancel"))
            if job is None:
                return self._error(404, "NOT_FOUND", "operation not found")
            self.canceled.add(job.id)
            return Answer(200, {})
        job = self.jobs.get(name)
        if job is None:
            return self._error(404, "NOT_FOUND", f"operation {name} not found")
        if job.id in self.canceled:
            error = {"code": 1, "message": "Operation was cancelled by the caller."}
            return Answer(200, {**self._operation(job, done=True), "error": error})
        if job.poll() is not None:
            return Answer(200, self._operation(job, done=False))
        if job.end == "Failed":
            error = {
                "code": 3,
                "message": job.error_message,
                "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest"}],
            }
            return Answer(200, {**self._operation(job, done=True), "error": error})
        response = {"@type": "type.example.com/Report", "rows": job.input.get("rows")}
        return Answer(200, {**self._operation(job, done=True), "response": response})

    def _operation(self, job: Job, *, done: bool) -> dict[str, Any]:
        percent = 100 if done else int(100 * job.polls / (len(job.words) + 1))
        return {
            "name": f"operations/{job.id}",
            "metadata": {"@type": "type.example.com/ReportMetadata", "progressPercent": percent},
            "done": done,
        }

    def _error(self, status: int, grpc_status: str, message: str) -> Answer:
        return Answer(
            status, {"error": {"code": status, "message": message, "status": grpc_status}}
        )
