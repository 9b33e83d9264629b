"""`OperationsClient`: the blocking client. It only does I/O; decisions live in the core."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import stamina

from opsclient.auth import TokenSlot
from opsclient.clock import Clock, SystemClock
from opsclient.dialects import interpret_status, redact
from opsclient.errors import OperationTimeout, OpsClientError, RequestError, WaitCanceled
from opsclient.model import Operation, OperationStatus
from opsclient.polling import Done, PollingPolicy, StatusPoller, Stop
from opsclient.protocol import (
    ClientCore,
    Inline,
    OperationRef,
    RequestSpec,
    accepting,
    describe,
    inline_bytes,
)
from opsclient.retries import RetryPolicy, retry_decision

__all__ = ["OperationsClient", "ProgressCallback", "TokenProvider"]

log = logging.getLogger("opsclient")

TokenProvider = Callable[[], str]
"""Returns a bearer token; called once up front and again after a 401."""

ProgressCallback = Callable[[OperationStatus], object]
"""Called with the status whenever its progress or custom status changes."""

_CHUNK = 64 * 1024


class OperationsClient:
    """Start long-running operations and wait for their results, blocking.

    `base_url` is the Function App (e.g. `https://myapp.azurewebsites.net` or
    `http://127.0.0.1:7071`); it may be None when only status URLs are waited on.
    `function_key` goes out as `x-functions-key` and `token_provider` as a bearer token, both
    only to the base URL's origin. `timeout` bounds each HTTP request; the total wait is
    bounded by `wait(timeout=...)`. `transport` replaces the network (tests use
    `httpx.MockTransport`).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        function_key: str | None = None,
        token_provider: TokenProvider | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        polling: PollingPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._core = ClientCore(
            base_url, function_key=function_key, has_token=token_provider is not None
        )
        self._polling = polling or PollingPolicy()
        self._retry = retry or RetryPolicy()
        self._retrying = stamina.RetryingCaller(**self._retry.stamina_options())
        self._clock: Clock = clock or SystemClock()
        self._token_provider = token_provider
        self._tokens = TokenSlot()
        self._token_lock = threading.Lock()
        self._http = httpx.Client(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,  # 302/303 are answers in these protocols, read them
            headers={"user-agent": "opsclient", **(headers or {})},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- operations ------------------------------------------------------------------------

    def start(
        self,
        kind: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> Operation:
        """Start an operation of `kind`; returns as soon as the server accepted it (202)."""
        spec = self._core.start_request(
            kind, input, idempotency_key=idempotency_key, callback_url=callback_url
        )
        with self._exchange(spec) as response:
            operation = self._core.read_start(response, spec, self._clock.wall())
        log.info("started %s operation %s", kind, operation.id or redact(operation.status_url))
        return operation

    def get(self, operation: OperationRef) -> OperationStatus:
        """The operation's status now, without waiting (Failed is returned, not raised)."""
        url = self._core.as_operation(operation).poll_url
        with self._exchange(self._core.status_request(url)) as response:
            return interpret_status(response, url)

    def wait(
        self,
        operation: OperationRef,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        cancel_remote: bool = False,
    ) -> OperationStatus:
        """Poll until the operation finishes; returns the final (succeeded) status.

        Raises OperationFailed, OperationCanceled, or OperationTimeout after `timeout`
        seconds in total. Setting `cancel` stops the wait with WaitCanceled. With
        `cancel_remote`, a wait ended by `cancel`, the timeout or Ctrl-C also cancels the
        operation on the server.
        """
        handle = self._core.as_operation(operation)
        clock = self._clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        poller = StatusPoller(
            handle.poll_url, policy=self._polling, deadline=deadline, operation_id=handle.id
        )
        try:
            first = poller.first_delay(handle.retry_after, now=clock.monotonic())
            if first > 0 and clock.sleep(first, cancel):
                raise WaitCanceled("wait canceled by the caller")
            while True:
                spec = self._core.status_request(poller.url)
                try:
                    with self._exchange(
                        spec, budget=poller.remaining(clock.monotonic())
                    ) as response:
                        step = poller.observe(
                            response, now=clock.monotonic(), wall_now=clock.wall()
                        )
                except RequestError as failure:
                    if (late := poller.timed_out(clock.monotonic())) is not None:
                        raise late from failure
                    raise
                if step.progress_changed and on_progress is not None and step.status is not None:
                    on_progress(step.status)
                if isinstance(step, Done):
                    log.info("operation %s succeeded", step.status.id or redact(poller.url))
                    return step.status
                if isinstance(step, Stop):
                    raise step.error
                log.debug(
                    "%s is %s; next poll in %.2fs",
                    redact(poller.url),
                    step.status.state,
                    step.delay,
                )
                if clock.sleep(step.delay, cancel):
                    raise WaitCanceled("wait canceled by the caller", step.status)
        except (WaitCanceled, OperationTimeout, KeyboardInterrupt):
            if cancel_remote:
                self._cancel_quietly(handle)
            raise

    def result(self, operation: OperationRef, *, accept: str | None = None) -> Any:
        """The finished operation's result: parsed JSON, text or bytes by content type.

        `accept` picks a representation when the server offers several (e.g. `text/csv`).
        """
        source = self._result_source(operation)
        if isinstance(source, Inline):
            return source.value
        with self._follow(accepting(source, accept)) as (response, final):
            return self._core.read_result(response, final)

    def download(self, operation: OperationRef, path: str | os.PathLike[str]) -> Path:
        """Stream the result to `path` (atomically: a broken download leaves no file)."""
        target = Path(path)
        source = self._result_source(operation)
        fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as sink:
                if isinstance(source, Inline):
                    sink.write(inline_bytes(source.value))
                else:
                    with self._follow(source, stream=True) as (response, final):
                        self._core.check_result(response, final)
                        try:
                            for chunk in response.iter_bytes(_CHUNK):
                                sink.write(chunk)
                        except httpx.HTTPError as exc:
                            raise self._core.translate(exc, final) from exc
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        return target

    def run(
        self,
        kind: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        cancel_remote: bool = False,
        accept: str | None = None,
    ) -> Any:
        """Start, wait and fetch the result: the one-liner for scripts."""
        operation = self.start(
            kind, input, idempotency_key=idempotency_key, callback_url=callback_url
        )
        final = self.wait(
            operation,
            timeout=timeout,
            on_progress=on_progress,
            cancel=cancel,
            cancel_remote=cancel_remote,
        )
        source = self._core.result_plan(operation, final)
        if isinstance(source, Inline):
            return source.value
        with self._follow(accepting(source, accept)) as (response, spec):
            return self._core.read_result(response, spec)

    def cancel(self, operation: OperationRef, *, reason: str = "canceled by opsclient") -> None:
        """Cancel the operation on the server (OperationAlreadyFinished if too late)."""
        spec = self._core.cancel_request(self._core.as_operation(operation), reason)
        with self._exchange(spec) as response:
            self._core.read_control(response, spec, "cancel")

    def raise_event(self, operation: OperationRef, name: str, data: Any = None) -> None:
        """Send the external event `name` with JSON `data` to the orchestration."""
        spec = self._core.raise_event_request(self._core.as_operation(operation), name, data)
        with self._exchange(spec) as response:
            self._core.read_control(response, spec, f"raise event {name!r}")
        log.info("raised %s on %s: %s", name, redact(spec.url), describe(data))

    # -- I/O -------------------------------------------------------------------------------

    def _result_source(self, operation: OperationRef) -> Inline | RequestSpec:
        handle = self._core.as_operation(operation)
        status = operation if isinstance(operation, OperationStatus) else None
        if status is None and handle.result_url is None:
            status = self.get(handle)
        return self._core.result_plan(handle, status)

    @contextlib.contextmanager
    def _follow(
        self, spec: RequestSpec, *, stream: bool = False
    ) -> Iterator[tuple[httpx.Response, RequestSpec]]:
        hops = 0
        while True:
            with self._exchange(spec, stream=stream) as response:
                following = self._core.redirect(response, spec, hops)
                if following is None:
                    yield response, spec
                    return
            spec, hops = following, hops + 1

    def _cancel_quietly(self, handle: Operation) -> None:
        try:
            self.cancel(handle, reason="wait stopped by the caller")
        except OpsClientError as exc:
            log.warning("could not cancel %s on the server: %s", redact(handle.poll_url), exc)

    @contextlib.contextmanager
    def _exchange(
        self, spec: RequestSpec, *, stream: bool = False, budget: float | None = None
    ) -> Iterator[httpx.Response]:
        """Send with retries; after a 401, refresh the token once and send again."""
        token, generation = self._current_token()
        response = self._send(spec, token, stream, budget)
        try:
            if (
                response.status_code == 401
                and self._token_provider is not None
                and self._core.sends_credentials(spec.url)
            ):
                response.close()
                log.info("401 from %s: refreshing the token once", redact(spec.url))
                token = self._refreshed_token(generation)
                response = self._send(spec, token, stream, budget)
            yield response
        finally:
            response.close()

    def _send(
        self, spec: RequestSpec, token: str | None, stream: bool, budget: float | None
    ) -> httpx.Response:
        decide = functools.partial(
            retry_decision, retry_safe=self._core.retryable(spec), policy=self._retry
        )
        retrying = self._retrying
        if budget is not None:
            retrying = stamina.RetryingCaller(**self._retry.stamina_options(budget))
        return retrying(decide, self._send_once, spec, token, stream)

    def _send_once(self, spec: RequestSpec, token: str | None, stream: bool) -> httpx.Response:
        headers = {**spec.headers, **self._core.credential_headers(spec.url, token)}
        content = None
        if spec.has_body:
            content = json.dumps(spec.json_body).encode()
            headers["content-type"] = "application/json"
        request = self._http.build_request(
            spec.method, spec.url, params=spec.params, headers=headers, content=content
        )
        log.debug("%s %s", spec.method, redact(str(request.url)))
        try:
            response = self._http.send(request, stream=stream)
            transient = self._core.transient_error(response, spec, self._clock.wall())
            if transient is not None:
                response.read()
                response.close()
                log.info(
                    "%s %s answered %s; may retry", spec.method, spec.url, response.status_code
                )
                raise transient
        except httpx.HTTPError as exc:
            raise self._core.translate(exc, spec) from exc
        return response

    def _current_token(self) -> tuple[str | None, int]:
        if self._token_provider is None:
            return None, 0
        with self._token_lock:
            if self._tokens.token is None:
                self._tokens.store(self._token_provider())
            return self._tokens.token, self._tokens.generation

    def _refreshed_token(self, seen_generation: int) -> str | None:
        assert self._token_provider is not None
        with self._token_lock:
            # Another thread may have refreshed while we waited: then reuse its token.
            if self._tokens.generation == seen_generation:
                self._tokens.store(self._token_provider())
            return self._tokens.token

    # Defined last: inside the class body the name `list` is this method from here on.
    def list(
        self, *, status: str | None = None, kind: str | None = None, top: int | None = None
    ) -> Iterator[OperationStatus]:
        """Every operation matching the filters, following continuation page by page."""
        spec: RequestSpec | None = self._core.list_request(status=status, kind=kind, top=top)
        while spec is not None:
            with self._exchange(spec) as response:
                page, spec = self._core.read_list_page(response, spec)
            yield from page
