"""The `ingest` kind: copy a set of URLs into Blob storage, retrying transient failures.

Each URL is one activity called with RetryOptions: a source answering 5xx/429, refusing
the connection or timing out fails the attempt and the runtime retries it after a durable
timer. A 4xx is permanent and is not retried (the activity reports it instead of raising),
and so is a source the outbound policy refuses (operations/outbound.py: loopback, private
and other non-public addresses unless OPS_OUTBOUND_ALLOW lists them), checked on the
address actually connected to and again on every redirect.
A copy whose write met a Blob storage outage is called again with the longer
result-write retry (operations/result_writes.py), so an outage does not spend the
source's attempts. The result is a JSON manifest; the operation fails if any URL could
not be copied.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from operations.errors import OperationFailure
from operations.kinds import (
    OperationKind,
    operation_output,
    progress_status,
    register_kind,
    result_uri_of,
)
from operations.lifecycle import announces_end
from operations.monitor import failure_message
from operations.result_writes import (
    RAISE_ON_STORAGE_OUTAGE,
    STORAGE_UNAVAILABLE,
    result_write_retry,
    write_result,
)
from operations.validation import InputSchema, UrlListField

__all__ = ["INGEST", "INGEST_RETRY", "bp", "ingest_operation"]

bp = df.Blueprint()

INGEST = register_kind(
    OperationKind(
        name="ingest",
        orchestrator="ingest_operation",
        description=(
            "Copies each of `urls` (e.g. blob SAS URLs or any http(s) source) into the "
            "operation's folder in Blob storage, streaming, with retries of transient "
            "failures; the result is a manifest (blob, bytes, sha256 per URL)."
        ),
        input_schema=InputSchema(
            (UrlListField("urls", min_items=1, max_items=32, description="What to copy."),)
        ),
    )
)

# 1 s, then fixed 1 s waits (the Python SDK's RetryOptions has no backoff coefficient),
# 4 attempts in all: rides out a restarting source without holding a dead one for long.
INGEST_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=4)


def _copy_again_after_storage_outage(
    context: df.DurableOrchestrationContext, urls: list[str], files: list[dict[str, Any]]
) -> Generator[Any, Any, list[dict[str, Any]]]:
    """Copy again the URLs whose write met a storage outage, with the long result-write
    retry (durable timers); the other answers as they were."""
    waiting = [i for i, f in enumerate(files) if f["status"] == STORAGE_UNAVAILABLE]
    if not waiting:
        return files
    context.set_custom_status(progress_status(0.5, "waiting for Blob storage"))
    retry = result_write_retry()
    again = [
        context.call_activity_with_retry(
            "ingest_copy",
            retry,
            {
                "operationId": context.instance_id,
                "index": i,
                "url": urls[i],
                RAISE_ON_STORAGE_OUTAGE: True,
            },
        )
        for i in waiting
    ]
    try:
        copied = yield context.task_all(again)
    except Exception as error:
        raise OperationFailure(
            f"copying gave up after {retry.max_number_of_attempts} attempts: "
            f"{failure_message(str(error))}"
        ) from error
    redone = dict(zip(waiting, copied, strict=True))
    return [redone.get(i, f) for i, f in enumerate(files)]


@bp.orchestration_trigger(context_name="context", orchestration="ingest_operation")
@announces_end
def ingest_operation(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Copy every URL in parallel; fail with the reasons if any could not be copied."""
    envelope = context.get_input()
    urls = list(envelope["input"]["urls"])
    operation_id = context.instance_id
    context.set_custom_status(progress_status(0.0, f"copying {len(urls)} URLs"))
    copies = [
        context.call_activity_with_retry(
            "ingest_copy", INGEST_RETRY, {"operationId": operation_id, "index": i, "url": url}
        )
        for i, url in enumerate(urls)
    ]
    try:
        files = yield context.task_all(copies)
    except Exception as error:
        raise OperationFailure(
            f"copying gave up after {INGEST_RETRY.max_number_of_attempts} attempts: "
            f"{failure_message(str(error))}"
        ) from error
    files = yield from _copy_again_after_storage_outage(context, urls, files)
    refused = [f for f in files if f["status"] != "copied"]
    if refused:
        reasons = "; ".join(f"{f['url']}: {f['reason']}" for f in refused)
        raise OperationFailure(f"{len(refused)} of {len(urls)} URLs could not be copied: {reasons}")
    context.set_custom_status(progress_status(0.95, "writing the manifest"))
    manifest = {
        "operationId": operation_id,
        "kind": INGEST.name,
        "files": files,
        "bytes": sum(int(f["bytes"]) for f in files),
    }
    results = yield from write_result(
        context, "write_json_result", {"operationId": operation_id, "document": manifest}
    )
    context.set_custom_status(progress_status(1.0, f"copied {len(files)} URLs"))
    summary = {"files": len(files), "bytes": manifest["bytes"]}
    return operation_output(INGEST, results, summary, result_uri_of(envelope, operation_id))
