"""RunWatchers the tests hand to a client run: one keeps the operation's id, one cancels
the operation right after the client saw it running."""

from __future__ import annotations

import threading

from tests.app.conftest import AppHost
from tests.compat.families import Unwatched
from tests.compat.outcomes import Exchange

__all__ = ["CancelWhenRunning", "IdWatcher"]


class IdWatcher(Unwatched):
    """Keeps the id of the operation the client started."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def started(self, operation_id: str) -> None:
        self.ids.append(operation_id)


class CancelWhenRunning:
    """A RunWatcher that cancels the operation (DELETE) right after the client saw it
    running, so the client learns of the cancel from one of its own later polls. For a
    client whose answers the test cannot see, it cancels once the server says Running.

    Use it as a context manager: leaving the block waits for the cancel and re-raises what
    went wrong with it."""

    def __init__(self, host: AppHost, *, client_reports_answers: bool) -> None:
        self._host = host
        self._client_reports_answers = client_reports_answers
        self._operation_id: str | None = None
        self._lock = threading.Lock()
        self._canceler: threading.Thread | None = None
        self.canceled = False
        self.failures: list[BaseException] = []

    def __enter__(self) -> CancelWhenRunning:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._canceler is not None:
            self._canceler.join()
        if self.failures:
            raise self.failures[0]

    def started(self, operation_id: str) -> None:
        self._operation_id = operation_id
        if not self._client_reports_answers:
            self._canceler = threading.Thread(target=self._cancel_once_running)
            self._canceler.start()

    def answered(self, exchange: Exchange) -> None:
        if exchange.body_status == "Running":
            self._cancel()

    def _cancel_once_running(self) -> None:
        assert self._operation_id is not None
        try:
            self._host.wait_for(self._operation_id, {"Running"})
        except BaseException as failure:  # handed to the test's thread by __exit__
            self.failures.append(failure)
            return
        self._cancel()

    def _cancel(self) -> None:
        with self._lock:
            if self.canceled or self._operation_id is None:
                return
            self.canceled = True
        answer = self._host.http.delete(f"{self._host.api}/{self._operation_id}")
        if answer.status_code != 202:
            self.failures.append(AssertionError(f"DELETE answered {answer.status_code}"))
