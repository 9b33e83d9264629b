"""The `ingest` kind's activity: stream one URL into Blob storage."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import azure.durable_functions as df
from azure.core.exceptions import AzureError

from operations.blobstore import BlobStore, file_blob_name
from operations.errors import StorageConfigurationError, TransientFetchError
from operations.outbound import (
    OutboundRefused,
    OutboundResponse,
    OutboundUnreachable,
    outbound_request,
)
from operations.result_writes import (
    RAISE_ON_STORAGE_OUTAGE,
    REFUSED,
    STORAGE_UNAVAILABLE,
    is_transient_storage_error,
    refused_write,
)

__all__ = ["bp", "ingest_copy", "is_transient_status"]

bp = df.Blueprint()
log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_TIMEOUT_SECONDS = 30
# Enough for a CDN or a storage front door; each hop passes the outbound policy again.
_MAX_REDIRECTS = 5


def is_transient_status(status: int) -> bool:
    """Worth another attempt: throttling and server-side errors."""
    return status == 429 or status == 408 or status >= 500


class _Digest:
    """Counts and hashes the bytes as they stream through to the upload."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def through(self, response: OutboundResponse) -> Iterator[bytes]:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                return
            self.sha256.update(chunk)
            self.size += len(chunk)
            yield chunk


def _storage_failure(
    task: dict[str, Any], url: str, name: str, error: AzureError | StorageConfigurationError
) -> dict[str, Any]:
    # The source's short RetryOptions must not be spent on a storage outage: the first
    # call answers STORAGE_UNAVAILABLE and the orchestrator calls again with the long
    # result-write retry and RAISE_ON_STORAGE_OUTAGE, which raises to use it.
    outage = isinstance(error, AzureError) and is_transient_storage_error(error)
    if outage and not task.get(RAISE_ON_STORAGE_OUTAGE):
        return {"url": url, "status": STORAGE_UNAVAILABLE, "blob": name}
    refusal = refused_write(error, name)  # raises TransientError if it may pass
    return {"url": url, "status": "refused", "reason": refusal[REFUSED]}


@bp.activity_trigger(input_name="task", activity="ingest_copy")
def ingest_copy(task: dict[str, Any]) -> dict[str, Any]:
    """Copy `task["url"]` to `<operationId>/files/<index>`.

    The request goes through operations.outbound (policy on every connected address,
    at most _MAX_REDIRECTS redirects, each re-checked). Raises TransientFetchError
    (retried by the orchestrator's RetryOptions) for 5xx/429/408 and network failures;
    returns `status: "refused"` for other HTTP errors and for destinations the outbound
    policy refuses, which a retry would not fix. A storage outage answers
    `status: STORAGE_UNAVAILABLE`, or raises TransientError when the task carries
    RAISE_ON_STORAGE_OUTAGE; a write storage refuses is `status: "refused"`.
    """
    url = str(task["url"])
    name = file_blob_name(str(task["operationId"]), int(task["index"]))
    try:
        response = outbound_request(
            "GET",
            url,
            headers={"User-Agent": "durable-ops-ingest/1"},
            timeout=_TIMEOUT_SECONDS,
            max_redirects=_MAX_REDIRECTS,
        )
    except ValueError as error:  # validated when started; kept for inputs from before
        return {"url": url, "status": "refused", "reason": f"the URL {error}"}
    except OutboundRefused as refusal:
        # Policy, not luck: another attempt would be refused the same way.
        return {"url": url, "status": "refused", "reason": str(refusal)}
    except OutboundUnreachable as failure:
        # One message whatever the cause, so the result cannot map the network.
        raise TransientFetchError(str(failure)) from None
    with response:
        if response.status >= 300:
            if is_transient_status(response.status):
                raise TransientFetchError(f"{url} answered HTTP {response.status}")
            return {"url": url, "status": "refused", "reason": f"HTTP {response.status}"}
        content_type = response.headers.get("Content-Type") or "application/octet-stream"
        digest = _Digest()
        try:
            BlobStore.from_settings().write_blob(name, digest.through(response), content_type)
        except (OutboundUnreachable, OSError):
            log.warning("ingest: %s broke off while streaming", url, exc_info=True)
            raise TransientFetchError(f"{url} broke off while streaming") from None
        except (AzureError, StorageConfigurationError) as error:
            return _storage_failure(task, url, name, error)
    return {
        "url": url,
        "status": "copied",
        "blob": name,
        "bytes": digest.size,
        "sha256": digest.sha256.hexdigest(),
        "contentType": content_type,
    }
