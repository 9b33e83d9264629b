"""The client families under test, behind one small interface.

Each family runs one operation its own way and tells how it ended (an `Outcome`):
`run` starts an operation and waits for it, telling a `RunWatcher` the operation's id as
soon as the 202 arrives and every answer as the client sees it (so a test can cancel the
operation right after the client saw it running); `resume` polls an operation started
earlier, from what that client would have kept (a URL, a continuation token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tests.compat.outcomes import Exchange, Outcome

__all__ = ["ClientFamily", "RunWatcher", "StoredOperation", "Unwatched"]


class RunWatcher(Protocol):
    """Told what happens while a client runs (called from the client's own threads)."""

    def started(self, operation_id: str) -> None:
        """The start request was accepted (202)."""

    def answered(self, exchange: Exchange) -> None:
        """The client received this answer."""


class Unwatched:
    """A RunWatcher that does nothing."""

    def started(self, operation_id: str) -> None:
        """Nothing to do."""

    def answered(self, exchange: Exchange) -> None:
        """Nothing to do."""


@dataclass(frozen=True, slots=True)
class StoredOperation:
    """An operation started earlier, as each kind of client would have stored it."""

    id: str
    monitor_url: str  # the 202's Location
    status_url: str  # the 202's Operation-Location
    status_query_get_uri: str  # the Durable Functions status URL from the 202 body
    azure_core_token: str  # LROPoller's continuation token


class ClientFamily(Protocol):
    """One way of calling the API."""

    @property
    def name(self) -> str:
        """The test id."""
        ...

    @property
    def expired_status(self) -> int:
        """The answer this client gets for an expired operation."""
        ...

    @property
    def records_exchanges(self) -> bool:
        """Whether the test sees the client's answers (not for the opsclient CLI)."""
        ...

    @property
    def follows_result_redirect(self) -> bool:
        """Whether it follows the result's 302 to storage (not a plain azure-core pipeline)."""
        ...

    def run(self, base_url: str, kind: str, body: Any, watch: RunWatcher) -> Outcome:
        """Start a `kind` operation with `body` and wait for it to end."""
        ...

    def resume(self, stored: StoredOperation) -> Outcome:
        """Wait for an operation started earlier."""
        ...
