"""The engine's public face: instance status records, queries, and the TaskHubClient
protocol that the HTTP management API and the durable client binding are built on.

Everything here is plain data; JSON payloads (input, output, custom status, event data)
travel as JSON *text* exactly as the SDK produced them, so nothing is decoded and
re-encoded on the way through the host.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from durablehost.model.history import HistoryEvent

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "InstancePage",
    "InstanceQuery",
    "InstanceStatus",
    "RuntimeStatus",
    "TaskHubClient",
]


class RuntimeStatus(enum.StrEnum):
    """Runtime status names exactly as the Durable Functions extension spells them."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"


TERMINAL_STATUSES = frozenset(
    {
        RuntimeStatus.COMPLETED,
        RuntimeStatus.FAILED,
        RuntimeStatus.TERMINATED,
        RuntimeStatus.CANCELED,
    }
)
ACTIVE_STATUSES = frozenset(set(RuntimeStatus) - TERMINAL_STATUSES)


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One orchestration instance as the status API reports it.

    `input`, `output` and `custom_status` are JSON text (or None). `history` is only
    filled when asked for (showHistory): the typed events, which wire.client formats in
    the extension's showHistory shape.
    """

    instance_id: str
    name: str
    runtime_status: RuntimeStatus
    created_time: datetime
    last_updated_time: datetime
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    parent_instance_id: str | None = None
    history: Sequence[HistoryEvent] | None = None


@dataclass(frozen=True, slots=True)
class InstanceQuery:
    """Filters for listing or purging instances; None means 'no filter'."""

    created_from: datetime | None = None
    created_to: datetime | None = None
    statuses: frozenset[RuntimeStatus] | None = None
    instance_id_prefix: str | None = None
    top: int | None = None
    continuation_token: str | None = None
    show_input: bool = True


@dataclass(frozen=True, slots=True)
class InstancePage:
    """One page of a listing; `continuation_token` is None on the last page."""

    instances: Sequence[InstanceStatus] = field(default_factory=tuple)
    continuation_token: str | None = None


class TaskHubClient(Protocol):
    """What the management API, the durable client binding and tests can ask of the engine.

    Errors are the ones in durablehost.errors (not found -> InstanceNotFoundError, and
    so on); the HTTP layer maps them to status codes.
    """

    async def start_orchestration(
        self, name: str, input_json: str | None, instance_id: str | None = None
    ) -> str:
        """Schedule a new instance; returns its id. Committed before it returns."""
        ...

    async def get_status(
        self,
        instance_id: str,
        *,
        show_input: bool = True,
        show_history: bool = False,
        show_history_output: bool = False,
    ) -> InstanceStatus | None:
        """The instance's status, or None when it does not exist."""
        ...

    async def list_instances(self, query: InstanceQuery) -> InstancePage:
        """Instances matching the query, newest first, one page at a time."""
        ...

    async def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None:
        """Deliver an external event; buffered until the orchestrator waits for it."""
        ...

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        """Terminate a non-terminal instance."""
        ...

    async def suspend(self, instance_id: str, reason: str | None) -> None:
        """Suspend a running instance; events are held until it resumes."""
        ...

    async def resume(self, instance_id: str, reason: str | None) -> None:
        """Resume a suspended instance."""
        ...

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        """Re-run the failed parts of a Failed instance."""
        ...

    async def restart(self, instance_id: str, *, new_instance_id: bool = True) -> str:
        """Start the instance again with its original input; returns the (new) id."""
        ...

    async def purge(self, instance_id: str) -> int:
        """Delete one instance's history and state; returns how many were deleted (0/1)."""
        ...

    async def purge_many(self, query: InstanceQuery) -> int:
        """Delete every terminal instance matching the query; returns how many."""
        ...

    async def wait_for_completion(
        self, instance_id: str, wait_seconds: float
    ) -> InstanceStatus | None:
        """Wait up to `wait_seconds` for the instance to reach a terminal state; returns
        its status then, or the current status when time runs out (None: not found)."""
        ...
