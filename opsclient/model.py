"""What the client hands back: an operation handle, its status, its progress."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsclient.final_state import FinalState

__all__ = ["Dialect", "Operation", "OperationStatus", "Progress", "RunState"]


class RunState(StrEnum):
    """Where an operation is, whatever the server's own words for it."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def finished(self) -> bool:
        """True once the operation can no longer change."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED)


class Dialect(StrEnum):
    """Which status protocol a status URL speaks."""

    DURABLE = "durable"  # Durable Functions built-in status: runtimeStatus, 202 while running
    MONITOR = "monitor"  # a `status` word: our monitor, REST API guidelines, ARM, seed-style
    GENERIC = "generic"  # async request-reply: 202 + Location, then the resource
    ARM = "arm"  # an ARM resource read while it provisions: properties.provisioningState
    GOOGLE = "google"  # a Google-style long-running operation: name, done, response|error


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the operation got: a fraction in [0, 1] and/or a message."""

    fraction: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """A started operation: where to poll it and what else the server offered.

    `status_url` is what `Location` pointed at (for our API, the Durable Functions
    `statusQueryGetUri`); `operation_url` is our operations monitor when the server has one,
    and is polled in preference because it reports progress and redirects to the result.
    """

    status_url: str
    id: str | None = None
    operation_url: str | None = None
    result_url: str | None = None
    send_event_url: str | None = None
    terminate_url: str | None = None
    retry_after: float | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    # Where the result is once an Operation-Location/Azure-AsyncOperation poll succeeds
    # (the ARM / REST guidelines final-state rules, opsclient.final_state); None otherwise.
    final_state: FinalState | None = None

    @property
    def poll_url(self) -> str:
        """The URL `wait` polls."""
        return self.operation_url or self.status_url


@dataclass(frozen=True, slots=True)
class OperationStatus:
    """One reading of an operation's status, in any dialect.

    `output` is the inline result when the status carries one (Durable `output`, or the
    resource body of a generic 200/201); `result_url` where the result can be fetched
    (our `resultUri`, or the target of a 302/303/201 Location). `error` holds the server's
    failure details when `state` is Failed (always with `message` and `detail`). `payload`
    is the body as received. `reported_status` is the server's own status word; when
    opsclient does not know it, `status_recognized` is False and `state` is Running (an
    unknown word is never taken for done).
    """

    state: RunState
    dialect: Dialect
    url: str
    id: str | None = None
    kind: str | None = None
    runtime_status: str | None = None
    progress: Progress | None = None
    custom_status: Any = None
    output: Any = None
    has_output: bool = False
    error: Mapping[str, Any] | None = None
    result_url: str | None = None
    payload: Any = None
    http_status: int = 200
    reported_status: str | None = None
    status_recognized: bool = True

    @property
    def finished(self) -> bool:
        """True once the operation can no longer change."""
        return self.state.finished
