"""Client families in this process: azure-core's LROPoller, a plain httpx loop on the
Durable Functions status URL, and opsclient's sync and async clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from azure.core.exceptions import HttpResponseError

from opsclient import (
    AsyncOperationsClient,
    HTTPStatusError,
    OperationCanceled,
    OperationFailed,
    OperationsClient,
)
from tests.compat.azure_core_lro import (
    Pipeline,
    RecordingPolicy,
    begin_operation,
    make_client,
    resume_operation,
    start_operation,
)
from tests.compat.durable_status import retry_after_seconds, wait_for_instance
from tests.compat.families import RunWatcher, StoredOperation, Unwatched
from tests.compat.outcomes import Ending, Exchange, Outcome, body_status_of

__all__ = ["AzureCoreClient", "DurableStatusClient", "OpsclientAsync", "OpsclientSync"]

CLIENT_TIMEOUT_SECONDS = 60.0
# What azure-core's LRO polling accepts as an answer (base_polling's status check).
_LRO_ACCEPTED_STATUSES = frozenset({200, 201, 202, 204})


def _exchange(response: httpx.Response, content: bytes) -> Exchange:
    # A compressed body is not read here; none of these answers is compressed.
    readable = "content-encoding" not in response.headers
    return Exchange(
        method=response.request.method,
        url=str(response.request.url),
        status=response.status_code,
        retry_after=response.headers.get("Retry-After"),
        location=response.headers.get("Location"),
        body_status=body_status_of(content) if readable else None,
    )


@contextmanager
def _recorded_httpx(watch: RunWatcher) -> Iterator[tuple[httpx.Client, list[Exchange]]]:
    """An httpx client whose event hook keeps every answer."""
    exchanges: list[Exchange] = []

    def record(response: httpx.Response) -> None:
        response.read()
        exchanges.append(_exchange(response, response.content))
        watch.answered(exchanges[-1])

    with httpx.Client(timeout=30, event_hooks={"response": [record]}) as http:
        yield http, exchanges


# ------------------------------------------------------------------------------- azure-core


@dataclass(frozen=True)
class AzureCoreClient:
    """LROPoller + LROBasePolling over a plain PipelineClient or a generated client's policies."""

    pipeline: Pipeline
    expired_status: int = 410
    records_exchanges: bool = True

    @property
    def follows_result_redirect(self) -> bool:
        # PipelineClient's defaults have no RedirectPolicy, and the final GET accepts only
        # 200/201/202/204: a 302 from the result ends the poller with an error.
        return self.pipeline != "plain"

    @property
    def name(self) -> str:
        return f"azure-core-{self.pipeline}"

    def run(self, base_url: str, kind: str, body: Any, watch: RunWatcher) -> Outcome:
        recorder = RecordingPolicy(watch.answered)
        with make_client(base_url, self.pipeline, recorder) as client:
            initial = start_operation(client, kind, body)
            watch.started(initial.http_response.json()["id"])
            return self._wait(begin_operation(client, initial), recorder)

    def resume(self, stored: StoredOperation) -> Outcome:
        recorder = RecordingPolicy()
        base_url = stored.monitor_url.split("/api/")[0]
        with make_client(base_url, self.pipeline, recorder) as client:
            return self._wait(resume_operation(client, stored.azure_core_token), recorder)

    @staticmethod
    def _wait(poller: Any, recorder: RecordingPolicy) -> Outcome:
        try:
            # wait() re-raises what ended the polling thread.
            poller.wait(CLIENT_TIMEOUT_SECONDS)
            if not poller.done():
                message = f"still {poller.status()} after {CLIENT_TIMEOUT_SECONDS} s"
                return Outcome(Ending.UNCLEAR, message=message, exchanges=recorder.exchanges)
            result = poller.result()
        except HttpResponseError as error:
            # azure-core reads "Failed" for any answer it does not accept too (a 410 while
            # polling, a 302 from the result), so the status code tells an operation that
            # failed (a 200 status body) from a poll that did.
            ending = Ending.ERROR
            if error.status_code in _LRO_ACCEPTED_STATUSES:
                ending = {"Failed": Ending.FAILED, "Canceled": Ending.CANCELED}.get(
                    poller.status(), Ending.UNCLEAR
                )
            return Outcome(
                ending,
                message=str(error),
                status_code=error.status_code,
                exchanges=recorder.exchanges,
            )
        return Outcome(Ending.SUCCEEDED, result=result, exchanges=recorder.exchanges)


# ------------------------------------------------------------------------------- Durable


@dataclass(frozen=True)
class DurableStatusClient:
    """The 202 body's `statusQueryGetUri`, polled with plain httpx; `output.resultUri` next.

    An expired operation's history is purged, and the built-in status URL knows nothing of
    our tombstones: it answers 404 (instance not found), as the extension does."""

    name: str = "durable-status"
    expired_status: int = 404
    records_exchanges: bool = True
    follows_result_redirect: bool = True

    def run(self, base_url: str, kind: str, body: Any, watch: RunWatcher) -> Outcome:
        with _recorded_httpx(watch) as (http, exchanges):
            response = http.post(f"{base_url}/api/operations/{kind}", json=body)
            response.raise_for_status()
            started = response.json()
            watch.started(started["id"])
            # The start's Retry-After counts: the first poll waits for it too.
            first_wait = retry_after_seconds(response)
            return self._wait(http, started["statusQueryGetUri"], exchanges, first_wait)

    def resume(self, stored: StoredOperation) -> Outcome:
        with _recorded_httpx(Unwatched()) as (http, exchanges):
            return self._wait(http, stored.status_query_get_uri, exchanges, first_wait=0)

    @staticmethod
    def _wait(
        http: httpx.Client, status_url: str, exchanges: list[Exchange], first_wait: float
    ) -> Outcome:
        try:
            final = wait_for_instance(http, status_url, CLIENT_TIMEOUT_SECONDS, first_wait)
            runtime_status = final.get("runtimeStatus")
            if runtime_status == "Completed":
                # A large result is a 302 to storage.
                result = http.get(final["output"]["resultUri"], follow_redirects=True)
                result.raise_for_status()
                return Outcome(Ending.SUCCEEDED, result=result.json(), exchanges=exchanges)
        except httpx.HTTPStatusError as error:
            return Outcome(
                Ending.ERROR,
                message=error.response.text,
                status_code=error.response.status_code,
                exchanges=exchanges,
            )
        ending = {"Failed": Ending.FAILED, "Terminated": Ending.CANCELED}.get(
            str(runtime_status), Ending.UNCLEAR
        )
        return Outcome(
            ending, message=f"{runtime_status}: {final.get('output')}", exchanges=exchanges
        )


# ------------------------------------------------------------------------------- opsclient


class _RecordingTransport(httpx.BaseTransport):
    """The real network, keeping each answer (opsclient takes a `transport=`)."""

    def __init__(self, exchanges: list[Exchange], watch: RunWatcher) -> None:
        self._network = httpx.HTTPTransport()
        self._exchanges = exchanges
        self._watch = watch

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._network.handle_request(request)
        # Raw bytes, handed on unchanged (still encoded, if they were).
        assert isinstance(response.stream, httpx.SyncByteStream)
        content = b"".join(response.stream)
        response.close()
        response.request = request
        self._exchanges.append(_exchange(response, content))
        self._watch.answered(self._exchanges[-1])
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(content),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._network.close()


class _AsyncRecordingTransport(httpx.AsyncBaseTransport):
    """The async twin of _RecordingTransport."""

    def __init__(self, exchanges: list[Exchange], watch: RunWatcher) -> None:
        self._network = httpx.AsyncHTTPTransport()
        self._exchanges = exchanges
        self._watch = watch

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._network.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        content = b"".join([chunk async for chunk in response.stream])
        await response.aclose()
        response.request = request
        self._exchanges.append(_exchange(response, content))
        self._watch.answered(self._exchanges[-1])
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(content),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._network.aclose()


def _opsclient_outcome(error: Exception, exchanges: list[Exchange]) -> Outcome:
    if isinstance(error, OperationFailed):
        return Outcome(Ending.FAILED, message=str(error), exchanges=exchanges)
    if isinstance(error, OperationCanceled):
        return Outcome(Ending.CANCELED, message=str(error), exchanges=exchanges)
    if isinstance(error, HTTPStatusError):
        return Outcome(
            Ending.ERROR, message=str(error), status_code=error.status_code, exchanges=exchanges
        )
    raise error


@dataclass(frozen=True)
class OpsclientSync:
    """OperationsClient: start, wait, result."""

    name: str = "opsclient-sync"
    expired_status: int = 410
    records_exchanges: bool = True
    follows_result_redirect: bool = True

    def run(self, base_url: str, kind: str, body: Any, watch: RunWatcher) -> Outcome:
        exchanges: list[Exchange] = []
        with OperationsClient(base_url, transport=_RecordingTransport(exchanges, watch)) as client:
            try:
                operation = client.start(kind, body)
                watch.started(operation.id or "")
                final = client.wait(operation, timeout=CLIENT_TIMEOUT_SECONDS)
                result = client.result(final)
            except (OperationFailed, OperationCanceled, HTTPStatusError) as error:
                return _opsclient_outcome(error, exchanges)
        return Outcome(Ending.SUCCEEDED, result=result, exchanges=exchanges)

    def resume(self, stored: StoredOperation) -> Outcome:
        exchanges: list[Exchange] = []
        with OperationsClient(transport=_RecordingTransport(exchanges, Unwatched())) as client:
            try:
                final = client.wait(stored.monitor_url, timeout=CLIENT_TIMEOUT_SECONDS)
                result = client.result(final)
            except (OperationFailed, OperationCanceled, HTTPStatusError) as error:
                return _opsclient_outcome(error, exchanges)
        return Outcome(Ending.SUCCEEDED, result=result, exchanges=exchanges)


@dataclass(frozen=True)
class OpsclientAsync:
    """AsyncOperationsClient: start, wait, result, on an event loop of its own."""

    name: str = "opsclient-async"
    expired_status: int = 410
    records_exchanges: bool = True
    follows_result_redirect: bool = True

    def run(self, base_url: str, kind: str, body: Any, watch: RunWatcher) -> Outcome:
        async def main() -> Outcome:
            exchanges: list[Exchange] = []
            transport = _AsyncRecordingTransport(exchanges, watch)
            async with AsyncOperationsClient(base_url, transport=transport) as client:
                try:
                    operation = await client.start(kind, body)
                    watch.started(operation.id or "")
                    final = await client.wait(operation, timeout=CLIENT_TIMEOUT_SECONDS)
                    result = await client.result(final)
                except (OperationFailed, OperationCanceled, HTTPStatusError) as error:
                    return _opsclient_outcome(error, exchanges)
            return Outcome(Ending.SUCCEEDED, result=result, exchanges=exchanges)

        return asyncio.run(main())

    def resume(self, stored: StoredOperation) -> Outcome:
        async def main() -> Outcome:
            exchanges: list[Exchange] = []
            transport = _AsyncRecordingTransport(exchanges, Unwatched())
            async with AsyncOperationsClient(transport=transport) as client:
                try:
                    final = await client.wait(stored.monitor_url, timeout=CLIENT_TIMEOUT_SECONDS)
                    result = await client.result(final)
                except (OperationFailed, OperationCanceled, HTTPStatusError) as error:
                    return _opsclient_outcome(error, exchanges)
            return Outcome(Ending.SUCCEEDED, result=result, exchanges=exchanges)

        return asyncio.run(main())
