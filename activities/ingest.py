"""The `ingest` kind's activity: stream one URL into Blob storage."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import azure.durable_functions as df

from operations.blobstore import BlobStore, file_blob_name
from operations.errors import TransientFetchError

__all__ = ["bp", "ingest_copy", "is_transient_status"]

bp = df.Blueprint()

_CHUNK = 256 * 1024
_TIMEOUT_SECONDS = 30


def is_transient_status(status: int) -> bool:
    """Worth another attempt: throttling and server-side errors."""
    return status == 429 or status == 408 or status >= 500


class _Digest:
    """Counts and hashes the bytes as they stream through to the upload."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def through(self, response: Any) -> Iterator[bytes]:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                return
            self.sha256.update(chunk)
            self.size += len(chunk)
            yield chunk


@bp.activity_trigger(input_name="task", activity="ingest_copy")
def ingest_copy(task: dict[str, Any]) -> dict[str, Any]:
    """Copy `task["url"]` to `<operationId>/files/<index>`.

    Raises TransientFetchError (retried by the orchestrator's RetryOptions) for 5xx/429/
    408 and network failures; returns `status: "refused"` for other HTTP errors, which a
    retry would not fix.
    """
    url = str(task["url"])
    name = file_blob_name(str(task["operationId"]), int(task["index"]))
    request = urllib.request.Request(url, headers={"User-Agent": "durable-ops-ingest/1"})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if is_transient_status(error.code):
            raise TransientFetchError(f"{url} answered HTTP {error.code}") from None
        return {"url": url, "status": "refused", "reason": f"HTTP {error.code}"}
    except (urllib.error.URLError, OSError) as error:
        raise TransientFetchError(f"{url} could not be fetched: {error}") from None
    with response:
        content_type = response.headers.get("Content-Type") or "application/octet-stream"
        digest = _Digest()
        try:
            BlobStore.from_settings().write_blob(name, digest.through(response), content_type)
        except OSError as error:
            raise TransientFetchError(f"{url} broke off while streaming: {error}") from None
    return {
        "url": url,
        "status": "copied",
        "blob": name,
        "bytes": digest.size,
        "sha256": digest.sha256.hexdigest(),
        "contentType": content_type,
    }
