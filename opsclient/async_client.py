"""`AsyncOperationsClient`: the asyncio twin of `OperationsClient`, same methods, awaited."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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
from opsclient.errors import OperationTimeout, OpsClientError, RequestError, WaitCanceled
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
    from opsclient.poller import AsyncOperationPoller

__all__ = ["AsyncOperationsClient", "AsyncProgressCallback", "AsyncTokenProvider"]

log = logging.getLogger("opsclient")

AsyncTokenProvider = Callable[[], str | Awaitable[str]]
"""Returns (or resolves to) a bearer token; called once up front and again after a 401."""

AsyncProgressCallback = Callable[[OperationStatus], object]
"""Called (and awaited, if it returns an awaitable) whenever progress changes."""

_CHUNK = 64 * 1024
_REMOTE_CANCEL_GRACE = 10.0


class AsyncOperationsClient:
    """Start long-running operations and await their results.

    Same arguments and methods as `OperationsClient`. `wait` is cancellable like any
    coroutine; with `cancel_remote=True` a cancelled wait also cancels the operation on the
    server before the cancellation propagates.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        function_key: str | None = None,
        token_provider: AsyncTokenProvider | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._retrying = stamina.AsyncRetryingCaller(**self._retry.stamina_options())
        self._clock: Clock = clock or SystemClock()
        self._token_provider = token_provider
        self._tokens = TokenSlot()
        self._token_lock = asyncio.Lock()
        self._result_grace = result_grace
        self._results = ResultCache(max_entries=result_cache_size)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,  # 302/303 are answers in these protocols, read them
            headers={"user-agent": "opsclient", **(headers or {})},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- operations ------------------------------------------------------------------------

    async def start(
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
        async with self._exchange(spec) as response:
            operation = self._core.read_start(response, spec, self._clock.wall())
            operation = monitor_final_state(operation, response, spec.method, spec.url)
        log.info("started %s operation %s", kind, operation.id or redact(operation.status_url))
        return operation

    async def get(self, operation: OperationRef) -> OperationStatus:
        """The operation's status now, without waiting (Failed is returned, not raised)."""
        handle = self._core.as_operation(operation)
        url = handle.poll_url
        async with self._exchange(self._core.status_request(url)) as response:
            return apply_final_state(interpret_status(response, url), handle.final_state)

    async def wait(
        self,
        operation: OperationRef,
        *,
        # Same signature as the sync twin; the budget is measured on the injectable clock
        # and ends in OperationTimeout (with the last status), which asyncio.timeout cannot.
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109
        on_progress: AsyncProgressCallback | None = None,
        cancel: asyncio.Event | None = None,
        cancel_remote: bool = False,
        final_url: str | None = None,
    ) -> OperationStatus:
        """Poll until the operation finishes; returns the final (succeeded) status.

        Raises OperationFailed, OperationCanceled, or OperationTimeout after `timeout`
        seconds in total (an hour by default; None waits for ever). Cancel the task (or set
        `cancel`, which raises WaitCanceled) to stop waiting; with `cancel_remote` the
        operation is canceled on the server too. `final_url`: see the sync `wait`.
        """
        return await self._wait(
            operation,
            timeout=timeout,
            on_progress=on_progress,
            cancel=cancel,
            cancel_remote=cancel_remote,
            final_url=final_url,
        )

    async def _wait(
        self,
        operation: OperationRef,
        *,
        timeout: float | None,  # noqa: ASYNC109
        on_progress: AsyncProgressCallback | None = None,
        cancel: asyncio.Event | None = None,
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
            if first > 0 and await clock.sleep_async(first, cancel):
                raise WaitCanceled("wait canceled by the caller")
            while True:
                spec = self._core.status_request(poller.url)
                try:
                    async with self._exchange(
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
                    outcome = on_progress(step.status)
                    if inspect.isawaitable(outcome):
                        await outcome
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
                if await clock.sleep_async(step.delay, cancel):
                    raise WaitCanceled("wait canceled by the caller", step.status)
        except (WaitCanceled, OperationTimeout, asyncio.CancelledError):
            if cancel_remote:
                await self._cancel_quietly(handle)
            raise

    async def result(self, operation: OperationRef, *, accept: str | None = None) -> Any:
        """The finished operation's result: parsed JSON, text or bytes by content type.

        `accept` picks a representation when the server offers several (e.g. `text/csv`).
        """
        source, succeeded = await self._result_source(operation)
        if isinstance(source, Inline):
            return source.value
        return decode_result(await self._fetch_result(accepting(source, accept), grace=succeeded))

    async def download(self, operation: OperationRef, path: str | os.PathLike[str]) -> Path:
        """Stream the result to `path` (atomically: a broken download leaves no file)."""
        target = Path(path)
        source, _ = await self._result_source(operation)
        fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            # Plain file writes: chunks are small and local disks fast; not worth a thread.
            with os.fdopen(fd, "wb") as sink:
                if isinstance(source, Inline):
                    sink.write(inline_bytes(source.value))
                else:
                    async with self._follow(source, stream=True) as (response, final):
                        self._core.check_result(response, final)
                        try:
                            async for chunk in response.aiter_bytes(_CHUNK):
                                sink.write(chunk)
                        except httpx.HTTPError as exc:
                            raise self._core.translate(exc, final) from exc
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        return target

    async def run(
        self,
        kind: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109 (see wait)
        on_progress: AsyncProgressCallback | None = None,
        cancel: asyncio.Event | None = None,
        cancel_remote: bool = False,
        accept: str | None = None,
    ) -> Any:
        """Start, wait (an hour at most by default) and fetch the result: for scripts."""
        operation = await self.start(
            kind, input, idempotency_key=idempotency_key, callback_url=callback_url
        )
        final = await self.wait(
            operation,
            timeout=timeout,
            on_progress=on_progress,
            cancel=cancel,
            cancel_remote=cancel_remote,
        )
        return await self._result_of(operation, final, accept)

    # -- any 202 ---------------------------------------------------------------------------

    async def follow(
        self,
        response: httpx.Response,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109 (see wait)
        accept: str | None = None,
        final_state_via: FinalStateVia | str | None = None,
        on_progress: AsyncProgressCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> Any:
        """The final result of the operation any API started with `response` (see the
        sync `follow`): parsed JSON, text or bytes."""
        final = await self.follow_response(
            response,
            timeout=timeout,
            accept=accept,
            final_state_via=final_state_via,
            on_progress=on_progress,
            cancel=cancel,
        )
        return decode_result(final)

    async def follow_response(
        self,
        response: httpx.Response,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109 (see wait)
        accept: str | None = None,
        final_state_via: FinalStateVia | str | None = None,
        on_progress: AsyncProgressCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> httpx.Response:
        """Like `follow`, but the final answer itself (read); see the sync twin."""
        await response.aread()
        operation = operation_from_response(
            read_initial(response), final_state_via=final_state_via, now=self._clock.wall()
        )
        if operation is None:
            return response
        final = await self.wait(operation, timeout=timeout, on_progress=on_progress, cancel=cancel)
        source = self._core.result_plan(operation, final)
        if isinstance(source, Inline):
            return inline_response(source.value)
        return await self._fetch_result(accepting(source, accept), grace=True)

    # -- AsyncLROPoller-style --------------------------------------------------------------

    async def begin(
        self,
        kind: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109 (see wait)
        accept: str | None = None,
    ) -> AsyncOperationPoller:
        """Start an operation; returns a poller already polling it in a task."""
        from opsclient.poller import AsyncOperationPoller

        operation = await self.start(
            kind, input, idempotency_key=idempotency_key, callback_url=callback_url
        )
        return AsyncOperationPoller(self, operation, timeout=timeout, accept=accept)

    async def begin_follow(
        self,
        response: httpx.Response,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109 (see wait)
        accept: str | None = None,
        final_state_via: FinalStateVia | str | None = None,
    ) -> AsyncOperationPoller:
        """A poller for the operation `response` (any API's 202) started; see `follow`."""
        from opsclient.poller import AsyncOperationPoller

        await response.aread()
        operation = operation_from_response(
            read_initial(response), final_state_via=final_state_via, now=self._clock.wall()
        )
        if operation is None:
            return AsyncOperationPoller.finished(self, decode_result(response))
        return AsyncOperationPoller(self, operation, timeout=timeout, accept=accept)

    def poller_from_continuation_token(
        self,
        token: str,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        accept: str | None = None,
    ) -> AsyncOperationPoller:
        """Resume polling from a `continuation_token()` (call it inside the event loop)."""
        from opsclient.poller import AsyncOperationPoller

        return AsyncOperationPoller(self, decode_operation(token), timeout=timeout, accept=accept)

    async def cancel(
        self, operation: OperationRef, *, reason: str = "canceled by opsclient"
    ) -> None:
        """Cancel the operation on the server (OperationAlreadyFinished if too late)."""
        spec = self._core.cancel_request(self._core.as_operation(operation), reason)
        async with self._exchange(spec) as response:
            self._core.read_control(response, spec, "cancel")

    async def raise_event(self, operation: OperationRef, name: str, data: Any = None) -> None:
        """Send the external event `name` with JSON `data` to the orchestration."""
        spec = self._core.raise_event_request(self._core.as_operation(operation), name, data)
        async with self._exchange(spec) as response:
            self._core.read_control(response, spec, f"raise event {name!r}")
        log.info("raised %s on %s: %s", name, redact(spec.url), describe(data))

    # -- I/O -------------------------------------------------------------------------------

    async def _result_source(self, operation: OperationRef) -> tuple[Inline | RequestSpec, bool]:
        """Where the result is, and whether a status said Succeeded (a 404 is then waited)."""
        handle = self._core.as_operation(operation)
        status = operation if isinstance(operation, OperationStatus) else None
        if status is None and handle.result_url is None:
            status = await self.get(handle)
        succeeded = status is not None and status.state is RunState.SUCCEEDED
        return self._core.result_plan(handle, status), succeeded

    async def _result_of(
        self, operation: Operation, final: OperationStatus, accept: str | None
    ) -> Any:
        """The result of `operation` once `final` (its succeeded status) was read."""
        source = self._core.result_plan(operation, final)
        if isinstance(source, Inline):
            return source.value
        return decode_result(await self._fetch_result(accepting(source, accept), grace=True))

    async def _fetch_result(self, spec: RequestSpec, *, grace: bool) -> httpx.Response:
        """GET a result, read; see the sync twin (cache revalidation, 404 grace)."""
        clock = self._clock
        missing = MissingResultGrace(self._result_grace if grace else 0.0, self._polling)
        while True:
            hops, current = 0, spec
            while True:
                conditional, cached = self._results.conditional(current)
                async with self._exchange(conditional) as response:
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
            await clock.sleep_async(delay)

    @contextlib.asynccontextmanager
    async def _follow(
        self, spec: RequestSpec, *, stream: bool = False
    ) -> AsyncIterator[tuple[httpx.Response, RequestSpec]]:
        hops = 0
        while True:
            async with self._exchange(spec, stream=stream) as response:
                following = self._core.redirect(response, spec, hops)
                if following is None:
                    yield response, spec
                    return
            spec, hops = following, hops + 1

    async def _cancel_quietly(self, handle: Operation) -> None:
        # Shielded and bounded: we may be running inside a task that is being cancelled.
        try:
            await asyncio.wait_for(
                asyncio.shield(self.cancel(handle, reason="wait stopped by the caller")),
                _REMOTE_CANCEL_GRACE,
            )
        except (OpsClientError, TimeoutError) as exc:
            log.warning("could not cancel %s on the server: %s", redact(handle.poll_url), exc)

    @contextlib.asynccontextmanager
    async def _exchange(
        self, spec: RequestSpec, *, stream: bool = False, budget: float | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Send with retries; after a 401, refresh the token once and send again."""
        token, generation = await self._current_token()
        response = await self._send(spec, token, stream, budget)
        try:
            if (
                response.status_code == 401
                and self._token_provider is not None
                and self._core.sends_credentials(spec.url)
            ):
                await response.aclose()
                log.info("401 from %s: refreshing the token once", redact(spec.url))
                token = await self._refreshed_token(generation)
                response = await self._send(spec, token, stream, budget)
            yield response
        finally:
            await response.aclose()

    async def _send(
        self, spec: RequestSpec, token: str | None, stream: bool, budget: float | None
    ) -> httpx.Response:
        decide = functools.partial(
            retry_decision, retry_safe=self._core.retryable(spec), policy=self._retry
        )
        retrying = self._retrying
        if budget is not None:
            retrying = stamina.AsyncRetryingCaller(**self._retry.stamina_options(budget))
        return await retrying(decide, self._send_once, spec, token, stream)

    async def _send_once(
        self, spec: RequestSpec, token: str | None, stream: bool
    ) -> httpx.Response:
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
            response = await self._http.send(request, stream=stream)
            transient = self._core.transient_error(response, spec, self._clock.wall())
            if transient is not None:
                await response.aread()
                await response.aclose()
                log.info(
                    "%s %s answered %s; may retry", spec.method, spec.url, response.status_code
                )
                raise transient
        except httpx.HTTPError as exc:
            raise self._core.translate(exc, spec) from exc
        return response

    async def _fetch_token(self) -> str:
        assert self._token_provider is not None
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        return token

    async def _current_token(self) -> tuple[str | None, int]:
        if self._token_provider is None:
            return None, 0
        async with self._token_lock:
            if self._tokens.token is None:
                self._tokens.store(await self._fetch_token())
            return self._tokens.token, self._tokens.generation

    async def _refreshed_token(self, seen_generation: int) -> str | None:
        async with self._token_lock:
            # Another task may have refreshed while we waited: then reuse its token.
            if self._tokens.generation == seen_generation:
                self._tokens.store(await self._fetch_token())
            return self._tokens.token

    # Defined last: inside the class body the name `list` is this method from here on.
    async def list(
        self, *, status: str | None = None, kind: str | None = None, top: int | None = None
    ) -> AsyncIterator[OperationStatus]:
        """Every operation matching the filters, following continuation page by page."""
        spec: RequestSpec | None = self._core.list_request(status=status, kind=kind, top=top)
        while spec is not None:
            async with self._exchange(spec) as response:
                page, spec = self._core.read_list_page(response, spec)
            for status_ in page:
                yield status_
