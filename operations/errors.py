"""Exceptions of the operations framework.

    OperationsError                  root: everything the framework raises on purpose
    ├── UnknownKindError             no operation kind of that name is registered
    ├── KindRegistrationError        two kinds (or orchestrators) share a name
    ├── InputValidationError         a request body broke its kind's input schema
    ├── StorageConfigurationError    neither a connection string nor a blob endpoint is set
    ├── IdempotencyConflictError     an Idempotency-Key was reused with a different request
    ├── OperationFailure             an orchestrator gives up; its message becomes `error.detail`
    ├── TaskHubUnavailableError      the task hub's management API did not answer a list
    └── TransientError               a failure worth retrying (the retry policy decides)
        └── TransientFetchError      a source answered 5xx/429 or the connection failed

Permanent failures inside activities surface as ordinary exceptions: the orchestrator
turns them into a Failed operation with a problem-details `error`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FieldProblem",
    "IdempotencyConflictError",
    "InputValidationError",
    "KindRegistrationError",
    "OperationFailure",
    "OperationsError",
    "StorageConfigurationError",
    "TaskHubUnavailableError",
    "TransientError",
    "TransientFetchError",
    "UnknownKindError",
]


class OperationsError(Exception):
    """Root of every exception the operations framework raises on purpose."""


class UnknownKindError(OperationsError):
    """No operation kind of that name is registered."""


class KindRegistrationError(OperationsError):
    """Two kinds, or two kinds' orchestrators, share a name."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One bad field: where it is (a JSON pointer) and what is wrong, for a person."""

    field: str
    detail: str

    @property
    def pointer(self) -> str:
        """RFC 6901 pointer to the field in the request body (`field` is already
        slash-separated, e.g. `urls/2`, and our field names need no escaping)."""
        return "#/" + self.field if self.field else "#"


class InputValidationError(OperationsError):
    """A request body broke its kind's input schema; `problems` names each bad field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field or 'body'}: {p.detail}" for p in problems))


class StorageConfigurationError(OperationsError):
    """The app has no way to reach Blob storage."""


class IdempotencyConflictError(OperationsError):
    """The Idempotency-Key was already used with a different request."""


class OperationFailure(OperationsError):
    """An operation cannot succeed; the message is what the client reads in `error.detail`."""


class TransientError(OperationsError):
    """A failure worth retrying."""


class TransientFetchError(TransientError):
    """A source answered 5xx/429, or the connection failed or timed out."""


class TaskHubUnavailableError(OperationsError):
    """The task hub's management API did not answer a list request usefully."""
