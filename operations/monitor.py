"""The status monitor: how a Durable Functions instance reads as an operation.

Pure functions (no I/O) from what the durable client reports to the public status body
`{id, kind, status, progress, percentComplete, createdAt, updatedAt, operationUri,
statusUri, error?, resultUri?, resourceLocation?}`, and to the problem the status monitor
answers for an operation that ended without a result (`ended_problem`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from operations.problems import problem_body

__all__ = [
    "CANCELED_ERROR_CODE",
    "FAILED_ERROR_CODE",
    "TERMINAL_STATES",
    "OperationLinks",
    "OperationState",
    "canceled_error",
    "ended_problem",
    "error_of",
    "failure_message",
    "is_valid_operation_id",
    "iso_utc",
    "operation_state",
    "progress_of",
    "runtime_statuses_for",
    "status_body",
]


class OperationState(enum.StrEnum):
    """The public lifecycle of an operation (Azure API guidelines' status values)."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


TERMINAL_STATES = frozenset(
    {OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELED}
)

# Durable runtime status -> public state. Suspended is still "in flight" for a client.
_RUNTIME_TO_STATE: dict[str, OperationState] = {
    "Pending": OperationState.NOT_STARTED,
    "Running": OperationState.RUNNING,
    "ContinuedAsNew": OperationState.RUNNING,
    "Suspended": OperationState.RUNNING,
    "Completed": OperationState.SUCCEEDED,
    "Failed": OperationState.FAILED,
    "Terminated": OperationState.CANCELED,
    "Canceled": OperationState.CANCELED,
}

_OPERATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


def is_valid_operation_id(value: str) -> bool:
    """Ids we hand out are 32 hex digits; anything path-like can never name an operation."""
    return bool(_OPERATION_ID.match(value))


def operation_state(runtime_status: str | None) -> OperationState:
    """The public state of a durable runtime status (unknown strings read as Running)."""
    return _RUNTIME_TO_STATE.get(runtime_status or "", OperationState.RUNNING)


def runtime_statuses_for(state: OperationState) -> list[str]:
    """The durable runtime statuses that read as this public state (for list filters)."""
    return [runtime for runtime, public in _RUNTIME_TO_STATE.items() if public is state]


def iso_utc(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with a Z, to the second, like the management API."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class OperationLinks:
    """Where an operation's own resources live, built from the request's base URL."""

    api_base: str  # e.g. http://host/api/operations
    query: str = ""  # carried along (the function key `code`), already encoded

    @classmethod
    def from_request_url(cls, url: str) -> OperationLinks:
        """Links relative to whatever host and route prefix served this request."""
        parts = urlsplit(url)
        path = parts.path
        marker = path.find("/operations")
        base_path = path[: marker + len("/operations")] if marker >= 0 else "/api/operations"
        code = [value for key, value in parse_qsl(parts.query) if key == "code"]
        query = urlencode({"code": code[0]}) if code else ""
        return cls(f"{parts.scheme}://{parts.netloc}{base_path}", query)

    def _with_query(self, url: str) -> str:
        return f"{url}?{self.query}" if self.query else url

    def operation(self, operation_id: str) -> str:
        """The status monitor URL."""
        return self._with_query(f"{self.api_base}/{operation_id}")

    def status(self, operation_id: str) -> str:
        """The status resource URL (always 200, never redirects)."""
        return self._with_query(f"{self.api_base}/{operation_id}/status")

    def result(self, operation_id: str) -> str:
        """The result URL."""
        return self._with_query(f"{self.api_base}/{operation_id}/result")

    def without_query(self) -> OperationLinks:
        """The same links without the function key: for anything stored or sent on."""
        return OperationLinks(self.api_base)

    def collection(self, params: dict[str, str]) -> str:
        """The list URL with these query parameters (plus the carried query)."""
        query = urlencode(params)
        if self.query:
            query = f"{query}&{self.query}" if query else self.query
        return f"{self.api_base}?{query}" if query else self.api_base


def progress_of(state: OperationState, custom_status: Any) -> dict[str, Any]:
    """`{fraction, message}` from the orchestrator's custom status, settled when done."""
    fraction = 0.0
    message = ""
    if isinstance(custom_status, dict):
        raw = custom_status.get("fraction")
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            fraction = float(min(max(raw, 0.0), 1.0))
        message = str(custom_status.get("message") or "")
    elif isinstance(custom_status, str):
        message = custom_status
    if state is OperationState.SUCCEEDED:
        return {"fraction": 1.0, "message": message or "done"}
    if state is OperationState.NOT_STARTED:
        return {"fraction": 0.0, "message": message or "queued"}
    if state is OperationState.CANCELED:
        return {"fraction": fraction, "message": "canceled"}
    return {"fraction": fraction, "message": message}


# What the runtime wraps around a failure's message, outermost first.
_FAILURE_WRAPPERS = (
    re.compile(r"^Orchestrator function '[^']*' failed: "),
    re.compile(r"^Activity function '[^']*' failed: "),
    re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception|Failure): "),
)


def failure_message(text: str) -> str:
    """The part of a runtime failure text a person can act on: no `$OutOfProcData$`
    state, no traceback, no `Orchestrator/Activity function 'x' failed:` or exception
    class prefixes."""
    text = text.split("$OutOfProcData$", 1)[0]
    text = text.split("Traceback (most recent call last)", 1)[0].strip()
    changed = True
    while changed:
        changed = False
        for wrapper in _FAILURE_WRAPPERS:
            stripped = wrapper.sub("", text, count=1)
            if stripped != text:
                text, changed = stripped.strip(), True
    return text


FAILED_ERROR_CODE = "OperationFailed"
# The status monitor answers a Failed operation with 422 and this problem; the `error` of
# a status body is the same problem, so both read alike.
_FAILED_STATUS = 422
_FAILED_TITLE = "Operation failed"
CANCELED_ERROR_CODE = "OperationCanceled"
_CANCELED_STATUS = 409
_CANCELED_TITLE = "Operation canceled"


def error_of(output: Any) -> dict[str, Any]:
    """The `error` of a Failed operation: problem details plus the Azure-style `code` and
    `message` (the runtime reports a failure as text; see `failure_message`)."""
    if isinstance(output, dict) and "detail" in output:
        message = str(output["detail"])
    else:
        text = output if isinstance(output, str) else ("" if output is None else str(output))
        message = failure_message(text) or "The operation failed without a message."
    return problem_body(
        _FAILED_STATUS, "operation-failed", message, _FAILED_TITLE, code=FAILED_ERROR_CODE
    )


def canceled_error(operation_id: str) -> dict[str, Any]:
    """The `error` of a Canceled operation: problem details plus `code` and `message`."""
    return problem_body(
        _CANCELED_STATUS,
        "operation-canceled",
        f"Operation {operation_id} was canceled before it finished; it has no result.",
        _CANCELED_TITLE,
        code=CANCELED_ERROR_CODE,
    )


def ended_problem(body: dict[str, Any]) -> dict[str, Any] | None:
    """The problem the status monitor answers instead of a status body for an operation
    that ended without a result (Failed: 422, Canceled: 409), or None for any other state.
    `body` is a `status_body`."""
    state = OperationState(body["status"])
    identity = {"id": body["id"], "kind": body["kind"], "operationStatus": str(state)}
    if state is OperationState.FAILED:
        error = body["error"]
        return problem_body(
            _FAILED_STATUS,
            "operation-failed",
            error["detail"],
            _FAILED_TITLE,
            **identity,
            error={"code": error["code"], "message": error["message"]},
        )
    if state is OperationState.CANCELED:
        error = body["error"]
        return problem_body(
            _CANCELED_STATUS,
            "operation-canceled",
            error["detail"],
            _CANCELED_TITLE,
            **identity,
            error={"code": error["code"], "message": error["message"]},
        )
    return None


def status_body(
    *,
    operation_id: str,
    kind: str | None,
    runtime_status: str | None,
    custom_status: Any,
    output: Any,
    created: datetime | None,
    updated: datetime | None,
    links: OperationLinks,
) -> dict[str, Any]:
    """The public status of one operation."""
    state = operation_state(runtime_status)
    progress = progress_of(state, custom_status)
    body: dict[str, Any] = {
        "id": operation_id,
        "kind": kind,
        "status": str(state),
        "progress": progress,
        "percentComplete": round(progress["fraction"] * 100),
        "createdAt": iso_utc(created),
        "updatedAt": iso_utc(updated or created),
        "operationUri": links.operation(operation_id),
        "statusUri": links.status(operation_id),
    }
    if state is OperationState.SUCCEEDED:
        body["resultUri"] = links.result(operation_id)
        # The Azure REST API guidelines' name for where the finished resource is.
        body["resourceLocation"] = body["resultUri"]
        if isinstance(output, dict) and isinstance(output.get("summary"), dict):
            body["summary"] = output["summary"]
    elif state is OperationState.FAILED:
        body["error"] = error_of(output)
    elif state is OperationState.CANCELED:
        # Not a failure, but a client that only reads `error` (azure-core's pollers do)
        # should still say why there is no result.
        body["error"] = canceled_error(operation_id)
    return body
