"""azure-core's LROPoller on our API, the way an Azure SDK user or author would wire it.

Two pipelines: a plain `PipelineClient(base_url)` (its default policies: no redirect and no
retry policy; "plain-redirects" adds a RedirectPolicy), and the policy list an
autorest-generated client builds (the same list as
azure-storage-blob's generated `AzureBlobStorage`). The start is a POST through the
pipeline; `LROBasePolling` picks `OperationResourcePolling` from the `Operation-Location`
header, polls the status resource, waits what `Retry-After` says, and on Succeeded GETs
`resourceLocation`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from azure.core import PipelineClient
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    ContentDecodePolicy,
    CustomHookPolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    NetworkTraceLoggingPolicy,
    ProxyPolicy,
    RedirectPolicy,
    RequestIdPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
    SensitiveHeaderCleanupPolicy,
    UserAgentPolicy,
)
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import LROBasePolling
from azure.core.rest import HttpRequest

from tests.compat.outcomes import Exchange, body_status_of

__all__ = [
    "Pipeline",
    "RecordingPolicy",
    "begin_operation",
    "continuation_token",
    "make_client",
    "resume_operation",
    "start_operation",
]

# "plain-redirects": the plain client plus the RedirectPolicy a large result's 302 needs.
Pipeline = Literal["plain", "plain-redirects", "generated"]


class RecordingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Keeps every answer that reaches it (placed after the redirect and retry policies, it
    sees each hop and each retry)."""

    def __init__(self, on_answer: Callable[[Exchange], None] = lambda _exchange: None) -> None:
        self.exchanges: list[Exchange] = []
        self._on_answer = on_answer

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        http = response.http_response
        exchange = Exchange(
            method=request.http_request.method,
            url=str(request.http_request.url),
            status=http.status_code,
            retry_after=http.headers.get("Retry-After"),
            location=http.headers.get("Location"),
            body_status=body_status_of(http.text()),
        )
        self.exchanges.append(exchange)
        self._on_answer(exchange)


def _generated_client_policies(recorder: RecordingPolicy) -> list[Any]:
    """The list autorest's generated `_client.py` passes to PipelineClient, in its order."""
    policies = [
        RequestIdPolicy(),
        HeadersPolicy(),
        UserAgentPolicy(sdk_moniker="durable-ops-compat/0.1"),
        ProxyPolicy(),
        ContentDecodePolicy(),
        RedirectPolicy(),
        RetryPolicy(),
        None,  # authentication_policy: the local app needs no credential
        CustomHookPolicy(),
        recorder,  # where a generated client's per_retry_policies go
        NetworkTraceLoggingPolicy(),
        DistributedTracingPolicy(),
        SensitiveHeaderCleanupPolicy(),
        HttpLoggingPolicy(),
    ]
    return [policy for policy in policies if policy is not None]


def make_client(
    base_url: str, pipeline: Pipeline, recorder: RecordingPolicy
) -> PipelineClient[Any, Any]:
    """A PipelineClient for the app: the plain defaults, or a generated client's policies."""
    if pipeline == "plain":
        return PipelineClient(base_url, per_call_policies=[recorder])
    if pipeline == "plain-redirects":
        return PipelineClient(base_url, per_call_policies=[RedirectPolicy(), recorder])
    return PipelineClient(base_url, policies=_generated_client_policies(recorder))


def _json_body(pipeline_response: PipelineResponse[Any, Any]) -> Any:
    """The deserialization callback: the final resource's JSON."""
    return json.loads(pipeline_response.http_response.text())


def start_operation(
    client: PipelineClient[Any, Any], kind: str, body: Any
) -> PipelineResponse[Any, Any]:
    """POST the start request through the pipeline; the 202 as a PipelineResponse."""
    request = HttpRequest("POST", client.format_url(f"/api/operations/{kind}"), json=body)
    response: PipelineResponse[Any, Any] = client.send_request(
        request, _return_pipeline_response=True
    )
    response.http_response.raise_for_status()
    return response


def begin_operation(
    client: PipelineClient[Any, Any], initial: PipelineResponse[Any, Any]
) -> LROPoller[Any]:
    """An LROPoller over the 202 (polling starts at once, in the poller's thread)."""
    return LROPoller(client, initial, _json_body, LROBasePolling())


def continuation_token(
    client: PipelineClient[Any, Any], initial: PipelineResponse[Any, Any]
) -> str:
    """What `poller.continuation_token()` saves, taken without polling yet."""
    polling: LROBasePolling[Any, Any, Any] = LROBasePolling()
    polling.initialize(client, initial, _json_body)
    return polling.get_continuation_token()


def resume_operation(client: PipelineClient[Any, Any], token: str) -> LROPoller[Any]:
    """An LROPoller resumed from a continuation token (as `begin_x(continuation_token=...)`)."""
    return LROPoller.from_continuation_token(
        polling_method=LROBasePolling(),
        continuation_token=token,
        client=client,
        deserialization_callback=_json_body,
    )
