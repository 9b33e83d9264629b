"""Pollers with the names azure-core's `LROPoller` / `AsyncLROPoller` users know.

`client.begin(kind, input)` and `client.begin_follow(response)` return one; so does
`client.poller_from_continuation_token(token)`. The sync poller polls in a daemon thread
from the moment it is made (as `LROPoller` does); the async one in a task on the running
loop. Both only drive the client's own `wait` and result fetching.

Differences from azure-core, on purpose: `result(timeout)` raises `OperationTimeout` when
the operation is still running after `timeout` (azure-core returns whatever partial
resource it has); `status()` answers opsclient's `RunState` words (Pending, Running,
Succeeded, Failed, Canceled); there is no `polling_method()` (the `operation` handle and
`last_status` say what it would); done callbacks get the poller.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Final, Self

from opsclient.continuation import decode_operation, encode_operation
from opsclient.defaults import DEFAULT_WAIT_TIMEOUT
from opsclient.dialects import redact
from opsclient.errors import (
    ConfigurationError,
    OperationError,
    OperationTimeout,
    WaitCanceled,
)
from opsclient.model import Operation, OperationStatus, RunState

if TYPE_CHECKING:
    from opsclient.async_client import AsyncOperationsClient
    from opsclient.sync_client import OperationsClient

__all__ = ["AsyncOperationPoller", "OperationPoller"]

log = logging.getLogger("opsclient")

_NO_RESULT: Final = object()


class _PollerState:
    """What both pollers record as polling goes: status, outcome, callbacks."""

    def __init__(self, operation: Operation | None) -> None:
        self.operation = operation
        self.state = RunState.PENDING if operation is not None else RunState.SUCCEEDED
        self.last_status: OperationStatus | None = None
        self.result: Any = _NO_RESULT
        self.error: BaseException | None = None

    def observe(self, status: OperationStatus) -> None:
        self.last_status = status
        self.state = status.state

    def fail(self, error: BaseException) -> None:
        self.error = error
        if isinstance(error, OperationError) and error.status is not None:
            self.observe(error.status)

    def token(self) -> str:
        if self.operation is None:
            raise ConfigurationError("nothing to resume: the first answer was already the result")
        return encode_operation(self.operation)

    def still_running(self, timeout: float | None) -> OperationTimeout:
        where = self.operation.poll_url if self.operation else "?"
        return OperationTimeout(
            f"the operation at {redact(where)} is still {self.state.value} after {timeout} s; "
            "the poller keeps polling",
            self.last_status,
        )


class OperationPoller:
    """A long-running operation being polled in the background (azure-core's `LROPoller`).

    `result(timeout=None)` waits and returns the result (parsed JSON, text or bytes);
    `wait(timeout=None)` waits without returning it; `done()`, `status()`,
    `continuation_token()`, `add_done_callback(fn)` as in azure-core. The wait is bounded
    by the `timeout` given to `begin` (an hour unless told), not by `result(timeout)`.
    """

    def __init__(
        self,
        client: OperationsClient,
        operation: Operation | None,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
        result: Any = _NO_RESULT,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._accept = accept
        self._state = _PollerState(operation)
        self._done = threading.Event()
        self._stop = threading.Event()
        self._callbacks: list[Callable[[OperationPoller], object]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if operation is None:
            self._state.result = None if result is _NO_RESULT else result
            self._done.set()
            return
        self._thread = threading.Thread(
            target=self._poll, name=f"opsclient-poller-{operation.id or 'op'}", daemon=True
        )
        self._thread.start()

    @classmethod
    def finished(cls, client: OperationsClient, result: Any) -> OperationPoller:
        """A poller that is done already: the first answer was the result."""
        return cls(client, None, result=result)

    @classmethod
    def from_continuation_token(
        cls,
        token: str,
        *,
        client: OperationsClient,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
    ) -> Self:
        """Resume polling the operation a `continuation_token()` names, with `client`."""
        return cls(client, decode_operation(token), timeout=timeout, accept=accept)

    @property
    def operation(self) -> Operation | None:
        """The handle being polled (None when the first answer was the result)."""
        return self._state.operation

    @property
    def last_status(self) -> OperationStatus | None:
        """The latest status read, if any."""
        return self._state.last_status

    def _poll(self) -> None:
        state = self._state
        assert state.operation is not None
        try:
            final = self._client._wait(
                state.operation, timeout=self._timeout, cancel=self._stop, on_poll=state.observe
            )
            state.observe(final)
            state.result = self._client._result_of(state.operation, final, self._accept)
        except Exception as error:  # kept for result()/wait(), as LROPoller does
            state.fail(error)
        finally:
            self._done.set()
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        with self._lock:
            callbacks, self._callbacks = list(self._callbacks), []
        for callback in callbacks:
            self._call(callback)

    def _call(self, callback: Callable[[OperationPoller], object]) -> None:
        try:
            callback(self)
        except Exception:
            log.exception("a done callback of the poller for %s failed", self.operation)

    def result(self, timeout: float | None = None) -> Any:
        """The result, waiting up to `timeout` seconds (None: until the poll ends)."""
        self.wait(timeout)
        if not self._done.is_set():
            raise self._state.still_running(timeout)
        return self._state.result

    def wait(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` seconds for polling to end; raise what ended it badly."""
        self._done.wait(timeout)
        if self._state.error is not None:
            raise self._state.error

    def done(self) -> bool:
        """True once polling has ended (successfully or not)."""
        return self._done.is_set()

    def status(self) -> str:
        """The latest state: Pending, Running, Succeeded, Failed or Canceled."""
        return self._state.state.value

    def continuation_token(self) -> str:
        """An opaque string to resume polling later, from another client or process."""
        return self._state.token()

    def add_done_callback(self, func: Callable[[OperationPoller], object]) -> None:
        """Call `func(poller)` once polling has ended (at once if it has already)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(func)
                return
        self._call(func)

    def remove_done_callback(self, func: Callable[[OperationPoller], object]) -> None:
        """Forget a callback added before."""
        with self._lock:
            self._callbacks.remove(func)

    def stop_polling(self) -> None:
        """Stop the background polling; `result()` then raises WaitCanceled. The operation
        keeps running on the server."""
        self._stop.set()


class AsyncOperationPoller:
    """The asyncio twin (azure-core's `AsyncLROPoller`): `await poller.result()`,
    `await poller.wait()`, `await poller`, `done()`, `status()`, `continuation_token()`.

    Polling runs in a task created on the running loop when the poller is made.
    """

    def __init__(
        self,
        client: AsyncOperationsClient,
        operation: Operation | None,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
        result: Any = _NO_RESULT,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._accept = accept
        self._state = _PollerState(operation)
        self._callbacks: list[Callable[[AsyncOperationPoller], object]] = []
        self._task: asyncio.Task[None] | None = None
        self._finished = operation is None
        if operation is None:
            self._state.result = None if result is _NO_RESULT else result
            return
        self._task = asyncio.get_running_loop().create_task(
            self._poll(), name=f"opsclient-poller-{operation.id or 'op'}"
        )

    @classmethod
    def finished(cls, client: AsyncOperationsClient, result: Any) -> AsyncOperationPoller:
        """A poller that is done already: the first answer was the result."""
        return cls(client, None, result=result)

    @classmethod
    def from_continuation_token(
        cls,
        token: str,
        *,
        client: AsyncOperationsClient,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
    ) -> Self:
        """Resume polling the operation a `continuation_token()` names, with `client`."""
        return cls(client, decode_operation(token), timeout=timeout, accept=accept)

    @property
    def operation(self) -> Operation | None:
        """The handle being polled (None when the first answer was the result)."""
        return self._state.operation

    @property
    def last_status(self) -> OperationStatus | None:
        """The latest status read, if any."""
        return self._state.last_status

    async def _poll(self) -> None:
        state = self._state
        assert state.operation is not None
        try:
            final = await self._client._wait(
                state.operation, timeout=self._timeout, on_poll=state.observe
            )
            state.observe(final)
            state.result = await self._client._result_of(state.operation, final, self._accept)
        except asyncio.CancelledError:
            # Only stop_polling() (or the loop closing) cancels this task: not re-raised, so
            # result() reports it instead of an unretrieved cancellation.
            state.fail(WaitCanceled("polling stopped", state.last_status))
        except Exception as error:  # kept for result()/wait(), as AsyncLROPoller does
            state.fail(error)
        finally:
            self._finished = True
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                self._call(callback)

    def _call(self, callback: Callable[[AsyncOperationPoller], object]) -> None:
        try:
            callback(self)
        except Exception:
            log.exception("a done callback of the poller for %s failed", self.operation)

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The result, waiting up to `timeout` seconds (None: until the poll ends)."""
        await self.wait(timeout)
        if not self.done():
            raise self._state.still_running(timeout)
        return self._state.result

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()

    async def wait(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait up to `timeout` seconds for polling to end; raise what ended it badly.

        Cancelling this wait does not stop the polling task (use `stop_polling`).
        """
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=timeout)
        if self._state.error is not None:
            raise self._state.error

    def done(self) -> bool:
        """True once polling has ended (successfully or not)."""
        return self._finished

    def status(self) -> str:
        """The latest state: Pending, Running, Succeeded, Failed or Canceled."""
        return self._state.state.value

    def continuation_token(self) -> str:
        """An opaque string to resume polling later, from another client or process."""
        return self._state.token()

    def add_done_callback(self, func: Callable[[AsyncOperationPoller], object]) -> None:
        """Call `func(poller)` once polling has ended (at once if it has already)."""
        if self.done():
            self._call(func)
        else:
            self._callbacks.append(func)

    def remove_done_callback(self, func: Callable[[AsyncOperationPoller], object]) -> None:
        """Forget a callback added before."""
        self._callbacks.remove(func)

    def stop_polling(self) -> None:
        """Stop polling; `result()` then raises WaitCanceled. The operation keeps running."""
        if self._task is not None:
            self._task.cancel()
