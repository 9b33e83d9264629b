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
from typing import TYPE_CHECKING, Any, Self

import httpx
import stamina

from opsclient.auth import TokenSlot
from opsclient.clock import Clock, SystemClock
from opsclient.continuation import decode_operation
from opsclient.defaults import DEFAULT_RESULT_GRACE, DEFAULT_WAIT_TIMEOUT, RESULT_CACHE_ENTRIES
from opsclient.dialects import interpret_status, redact
from opsclient.errors import (
    OperationTimeout,
    OpsClientError,
    RequestError,
    WaitCanceled,
)
from opsclient.final_state import (
    FinalStateVia,
    apply_final_state,
    monitor_final_state,
    operation_from_response,
)
from opsclient.model import Operation, OperationStatus, RunState
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
from opsclient.result_fetching import (
    MissingResultGrace,
    ResultCache,
    decode_result,
    inline_response,
    read_initial,
)
from opsclient.retries import RetryPolicy, retry_decision

if TYPE_CHECKING:
    from opsclient.poller import OperationPoller

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
    bounded by `wait(timeout=...)` (an hour unless told, `DEFAULT_WAIT_TIMEOUT`).
    `transport` replaces the network (tests use `httpx.MockTransport`). `result_grace` is
    how long a result URL may answer 404 after the operation succeeded; the last
    `result_cache_size` results are kept and revalidated with If-None-Match (0: none).
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
        result_grace: float = DEFAULT_RESULT_GRACE,
        result_cache_size: int = RESULT_CACHE_ENTRIES,
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
        self._result_grace = result_grace
        self._results = ResultCache(max_entries=result_cache_size)
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
            operation = monitor_final_state(operation, response, spec.method, spec.url)
        log.info("started %s operation %s", kind, operation.id or redact(operation.status_url))
        return operation

    def get(self, operation: OperationRef) -> OperationStatus:
        """The operation's status now, without waiting (Failed is returned, not raised)."""
        handle = self._core.as_operation(operation)
        url = handle.poll_url
        with self._exchange(self._core.status_request(url)) as response:
            return apply_final_state(interpret_status(response, url), handle.final_state)

    def wait(
        self,
        operation: OperationRef,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        cancel_remote: bool = False,
        final_url: str | None = None,
    ) -> OperationStatus:
        """Poll until the operation finishes; returns the final (succeeded) status.

        Raises OperationFailed, OperationCanceled, or OperationTimeout after `timeout`
        seconds in total (an hour by default; None waits for ever). Setting `cancel` stops
        the wait with WaitCanceled. With `cancel_remote`, a wait ended by `cancel`, the
        timeout or Ctrl-C also cancels the operation on the server. `final_url` is where
        the result is once it succeeded, when the caller knows better than the status (an
        ARM PUT's own URL, say); the returned status points there, so `result()` reads it.
        """
        return self._wait(
            operation,
            timeout=timeout,
            on_progress=on_progress,
            cancel=cancel,
            cancel_remote=cancel_remote,
            final_url=final_url,
        )

    def _wait(
        self,
        operation: OperationRef,
        *,
        timeout: float | None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        cancel_remote: bool = False,
        final_url: str | None = None,
        on_poll: Callable[[OperationStatus], object] | None = None,
    ) -> OperationStatus:
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
                if on_poll is not None and step.status is not None:
                    on_poll(step.status)
                if step.progress_changed and on_progress is not None and step.status is not None:
                    on_progress(step.status)
                if isinstance(step, Done):
                    log.info("operation %s succeeded", step.status.id or redact(poller.url))
                    return apply_final_state(step.status, handle.final_state, final_url=final_url)
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
        source, succeeded = self._result_source(operation)
        if isinstance(source, Inline):
            return source.value
        return decode_result(self._fetch_result(accepting(source, accept), grace=succeeded))

    def download(self, operation: OperationRef, path: str | os.PathLike[str]) -> Path:
        """Stream the result to `path` (atomically: a broken download leaves no file)."""
        target = Path(path)
        source, _ = self._result_source(operation)
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
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        cancel_remote: bool = False,
        accept: str | None = None,
    ) -> Any:
        """Start, wait (an hour at most by default) and fetch the result: for scripts."""
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
        return self._result_of(operation, final, accept)

    # -- any 202 ---------------------------------------------------------------------------

    def follow(
        self,
        response: httpx.Response,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
        final_state_via: FinalStateVia | str | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Any:
        """The final result of the operation any API started with `response`.

        `response` is the answer (with its `.request`) to a POST/PUT/PATCH/DELETE of any
        API: a 202 is polled at Operation-Location, Azure-AsyncOperation, Location or the
        Durable `statusQueryGetUri`, then the result is read where the ARM final-state
        rules say (`final_state_via` overrides as in OpenAPI). Another 2xx is the result
        itself. Returns parsed JSON, text or bytes; errors raise as everywhere else.
        """
        final = self.follow_response(
            response,
            timeout=timeout,
            accept=accept,
            final_state_via=final_state_via,
            on_progress=on_progress,
            cancel=cancel,
        )
        return decode_result(final)

    def follow_response(
        self,
        response: httpx.Response,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
        final_state_via: FinalStateVia | str | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> httpx.Response:
        """Like `follow`, but the final answer itself (read), for code that wants headers.

        An inline result (a Durable `output`, a final status body) comes back as a JSON
        200 built here; `response` itself when there was nothing to poll.
        """
        operation = operation_from_response(
            read_initial(response), final_state_via=final_state_via, now=self._clock.wall()
        )
        if operation is None:
            return response
        final = self.wait(operation, timeout=timeout, on_progress=on_progress, cancel=cancel)
        source = self._core.result_plan(operation, final)
        if isinstance(source, Inline):
            return inline_response(source.value)
        return self._fetch_result(accepting(source, accept), grace=True)

    # -- LROPoller-style -------------------------------------------------------------------

    def begin(
        self,
        kind: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
    ) -> OperationPoller:
        """Start an operation; returns a poller already polling it in a background thread."""
        from opsclient.poller import OperationPoller

        operation = self.start(
            kind, input, idempotency_key=idempotency_key, callback_url=callback_url
        )
        return OperationPoller(self, operation, timeout=timeout, accept=accept)

    def begin_follow(
        self,
        response: httpx.Response,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
        final_state_via: FinalStateVia | str | None = None,
    ) -> OperationPoller:
        """A poller for the operation `response` (any API's 202) started; see `follow`."""
        from opsclient.poller import OperationPoller

        operation = operation_from_response(
            read_initial(response), final_state_via=final_state_via, now=self._clock.wall()
        )
        if operation is None:
            return OperationPoller.finished(self, decode_result(response))
        return OperationPoller(self, operation, timeout=timeout, accept=accept)

    def poller_from_continuation_token(
        self,
        token: str,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
    ) -> OperationPoller:
        """Resume polling from `OperationPoller.continuation_token()`, with this client."""
        from opsclient.poller import OperationPoller

        return OperationPoller(self, decode_operation(token), timeout=timeout, accept=accept)

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

    def _result_source(self, operation: OperationRef) -> tuple[Inline | RequestSpec, bool]:
        """Where the result is, and whether a status said Succeeded (a 404 is then waited)."""
        handle = self._core.as_operation(operation)
        status = operation if isinstance(operation, OperationStatus) else None
        if status is None and handle.result_url is None:
            status = self.get(handle)
        succeeded = status is not None and status.state is RunState.SUCCEEDED
        return self._core.result_plan(handle, status), succeeded

    def _result_of(self, operation: Operation, final: OperationStatus, accept: str | None) -> Any:
        """The result of `operation` once `final` (its succeeded status) was read."""
        source = self._core.result_plan(operation, final)
        if isinstance(source, Inline):
            return source.value
        return decode_result(self._fetch_result(accepting(source, accept), grace=True))

    def _fetch_result(self, spec: RequestSpec, *, grace: bool) -> httpx.Response:
        """GET a result (redirects followed), read: revalidated from the cache, and a 404
        waited out for `result_grace` seconds when the operation is known to have succeeded."""
        clock = self._clock
        missing = MissingResultGrace(self._result_grace if grace else 0.0, self._polling)
        while True:
            hops, current = 0, spec
            while True:
                conditional, cached = self._results.conditional(current)
                with self._exchange(conditional) as response:
                    if response.status_code == 304 and cached is not None:
                        return cached.as_response(response.request)
                    following = self._core.redirect(response, current, hops)
                    if following is None:
                        delay = missing.retry_delay(
                            response, now=clock.monotonic(), wall_now=clock.wall()
                        )
                        if delay is None:
                            self._core.check_result(response, current)
                            self._results.remember(current, response)
                            return response
                        break
                current, hops = following, hops + 1
            log.info("%s answered 404 after success; asking again in %.2fs", spec.url, delay)
            clock.sleep(delay)

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
