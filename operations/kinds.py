"""The operation-kind registry: what a kind is and how an orchestrator reports on itself.

A kind is declared once, in its orchestrator module, next to the orchestrator:

    REPORT = register_kind(OperationKind(
        name="report", orchestrator="report_operation", input_schema=InputSchema(...),
        result_types=("application/json", "text/csv")))

The HTTP API finds kinds here (POST /api/operations/{kind}); the status monitor maps an
instance back to its kind through the orchestrator name the runtime reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operations.errors import KindRegistrationError, UnknownKindError
from operations.validation import InputSchema

__all__ = [
    "OperationKind",
    "all_kinds",
    "find_kind_by_orchestrator",
    "get_kind",
    "operation_input",
    "operation_output",
    "progress_status",
    "register_kind",
    "result_uri_of",
]

# Result content types and the blob-name extension each is stored under.
RESULT_EXTENSIONS: dict[str, str] = {"application/json": "json", "text/csv": "csv"}


@dataclass(frozen=True, slots=True)
class OperationKind:
    """One kind of long-running operation."""

    name: str
    orchestrator: str
    input_schema: InputSchema
    description: str
    # What GET /result can answer, first = default when Accept allows anything.
    result_types: tuple[str, ...] = ("application/json",)

    def __post_init__(self) -> None:
        unknown = [t for t in self.result_types if t not in RESULT_EXTENSIONS]
        if unknown or not self.result_types:
            raise KindRegistrationError(
                f"kind {self.name!r}: result types must be among {sorted(RESULT_EXTENSIONS)}"
            )


_kinds: dict[str, OperationKind] = {}


def register_kind(kind: OperationKind) -> OperationKind:
    """Add a kind to the registry (idempotent for the same declaration) and return it."""
    existing = _kinds.get(kind.name)
    if existing is not None and existing != kind:
        raise KindRegistrationError(f"two operation kinds are named {kind.name!r}")
    for other in _kinds.values():
        if other.name != kind.name and other.orchestrator == kind.orchestrator:
            raise KindRegistrationError(
                f"kinds {other.name!r} and {kind.name!r} share orchestrator {kind.orchestrator!r}"
            )
    _kinds[kind.name] = kind
    return kind


def get_kind(name: str) -> OperationKind:
    """The registered kind, or UnknownKindError."""
    try:
        return _kinds[name]
    except KeyError:
        raise UnknownKindError(name) from None


def all_kinds() -> list[OperationKind]:
    """Every registered kind, by name."""
    return [_kinds[name] for name in sorted(_kinds)]


def find_kind_by_orchestrator(orchestrator: str | None) -> OperationKind | None:
    """The kind whose orchestrator has this name, or None (not an operation)."""
    if not orchestrator:
        return None
    for kind in _kinds.values():
        if kind.orchestrator.lower() == orchestrator.lower():
            return kind
    return None


def operation_input(
    kind: OperationKind, operation_id: str, payload: dict[str, Any], result_uri: str | None = None
) -> dict[str, Any]:
    """The orchestrator input envelope: the validated payload plus who we are, and the
    absolute result URL when the API knows it (never with a function key: it is stored)."""
    envelope: dict[str, Any] = {"operationId": operation_id, "kind": kind.name, "input": payload}
    if result_uri:
        envelope["resultUri"] = result_uri
    return envelope


# Where the result lives when the envelope does not say (an orchestration started through
# the Durable Functions management API): host.json's routePrefix is `api`.
_RELATIVE_RESULT_URI = "/api/operations/{operation_id}/result"


def result_uri_of(envelope: Any, operation_id: str) -> str:
    """The result URL an orchestration reports in its output: the envelope's absolute one,
    else root-relative (the orchestrator cannot know the host it is reached through)."""
    if isinstance(envelope, dict) and isinstance(envelope.get("resultUri"), str):
        return str(envelope["resultUri"])
    return _RELATIVE_RESULT_URI.format(operation_id=operation_id)


def operation_output(
    kind: OperationKind, results: dict[str, str], summary: dict[str, Any], result_uri: str
) -> dict[str, Any]:
    """What an operation orchestrator returns: where each result format lives, a small
    summary (the full result is in Blob storage, never in the history), and the result URL
    for clients that poll the Durable Functions statusQueryGetUri."""
    return {"kind": kind.name, "results": results, "summary": summary, "resultUri": result_uri}


def progress_status(fraction: float, message: str) -> dict[str, Any]:
    """The custom status an orchestrator sets to report progress (0.0 to 1.0)."""
    return {"fraction": round(min(max(fraction, 0.0), 1.0), 4), "message": message}
