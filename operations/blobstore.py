"""Blob storage for results and for the app's own records, named from the operation id.

Every blob an operation owns lives under `<operation id>/` in the results container, so a
re-run overwrites instead of duplicating and expiry deletes one prefix. The app's own
records live in the state container:

    idempotency/<sha256 of the key>.json   one per Idempotency-Key
    tombstones/<operation id>.json         one per expired operation (answers 410)
    webhooks/<operation id>.json           the webhook outbox, one per pending delivery
    webhooks-abandoned/<operation id>.json deliveries that ran out of attempts

Locally the connection is `AzureWebJobsStorage` (`UseDevelopmentStorage=true` means
Azurite on 127.0.0.1:10000); in Azure `AzureWebJobsStorage__blobServiceUri` (or
`__accountName`) with DefaultAzureCredential, no keys. Large results leave by a read-only
SAS URL (`result_read_url`), signed as `operations.blobsas` describes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    ExponentialRetry,
    UserDelegationKey,
)

from operations.blobsas import (
    AccountKeySigner,
    BlobSasSigner,
    UserDelegationKeyCache,
    UserDelegationSigner,
    read_url,
)
from operations.errors import StorageConfigurationError
from operations.kinds import RESULT_EXTENSIONS
from operations.settings import get_int, get_setting

__all__ = [
    "BlobStore",
    "JsonRecord",
    "ResultBlob",
    "ResultInfo",
    "file_blob_name",
    "idempotency_blob_name",
    "result_blob_name",
    "tombstone_blob_name",
    "webhook_blob_name",
]

# The storage emulator's well-known development account (public, documented by Microsoft).
_DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_DEVELOPMENT_STORAGE = (
    f"DefaultEndpointsProtocol=http;AccountName={_DEV_ACCOUNT};AccountKey={_DEV_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{_DEV_ACCOUNT};"
)
# The SDK logs every request's headers at INFO; keep the app's logs for the app.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


def result_blob_name(operation_id: str, content_type: str) -> str:
    """Where the result in this format lives, e.g. `<id>/result.json`."""
    return f"{operation_id}/result.{RESULT_EXTENSIONS[content_type]}"


def file_blob_name(operation_id: str, index: int) -> str:
    """Where a kind stores the index-th file it produced, e.g. `<id>/files/003`."""
    return f"{operation_id}/files/{index:03d}"


def idempotency_blob_name(key_hash: str) -> str:
    """The record of one Idempotency-Key (hashed: keys are client-chosen text)."""
    return f"idempotency/{key_hash}.json"


def tombstone_blob_name(operation_id: str) -> str:
    """The tombstone left when an operation expires."""
    return f"tombstones/{operation_id}.json"


def webhook_blob_name(operation_id: str, *, abandoned: bool = False) -> str:
    """The outbox entry of an operation's webhook."""
    folder = "webhooks-abandoned" if abandoned else "webhooks"
    return f"{folder}/{operation_id}.json"


@dataclass(frozen=True, slots=True)
class ResultBlob:
    """A result ready to send: its metadata and a chunk iterator over its bytes."""

    name: str
    content_type: str
    etag: str
    size: int
    chunks: Iterator[bytes]


@dataclass(frozen=True, slots=True)
class ResultInfo:
    """A result blob's metadata, read without its bytes."""

    name: str
    content_type: str
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class JsonRecord:
    """A small JSON blob and the ETag it was read at (for conditional replace)."""

    body: dict[str, Any]
    etag: str


class _ShortExponentialRetry(ExponentialRetry):
    """Waits 0.5 s, 1 s, 2 s, ... (each +-25%) between the SDK's own retries.

    ExponentialRetry's formula (initial + base**retry, +-3 s of jitter) cannot wait less
    than ~3 s after the first retry: initial_backoff=1, increment_base=2 waited 3, 5 and 9 s
    (measured against a stopped Azurite: 4 attempts, failing after 11-18 s, up to 26 s).
    An HTTP caller should hear 503 + Retry-After within seconds, and the result-writing
    activities ride out longer outages with durable retries (operations/result_writes.py).
    """

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        """0.5 s doubled per retry already made, jittered so many callers do not align."""
        backoff = 0.5 * 2 ** max(int(settings["count"]) - 1, 0)
        return random.uniform(0.75 * backoff, 1.25 * backoff)


def _retry_policy() -> ExponentialRetry:
    return _ShortExponentialRetry(retry_total=get_int("OPS_STORAGE_RETRIES"))


def _service_from_settings() -> BlobServiceClient:
    connection = get_setting("AzureWebJobsStorage")
    if connection:
        if connection.strip().rstrip(";") == "UseDevelopmentStorage=true":
            connection = _DEVELOPMENT_STORAGE
        return BlobServiceClient.from_connection_string(connection, retry_policy=_retry_policy())
    endpoint = get_setting("AzureWebJobsStorage__blobServiceUri")
    account = get_setting("AzureWebJobsStorage__accountName")
    if not endpoint and account:
        endpoint = f"https://{account}.blob.core.windows.net"
    if not endpoint:
        raise StorageConfigurationError(
            "set AzureWebJobsStorage (a connection string, or UseDevelopmentStorage=true for "
            "Azurite) or AzureWebJobsStorage__blobServiceUri (with a managed identity)"
        )
    # Imported here: azure-identity is only needed (and only configured) in Azure.
    from azure.identity import DefaultAzureCredential

    return BlobServiceClient(
        endpoint, credential=DefaultAzureCredential(), retry_policy=_retry_policy()
    )


def _sas_signer(service: BlobServiceClient) -> BlobSasSigner:
    """The signer that matches how the service client authenticates."""
    credential = service.credential
    account_key = getattr(credential, "account_key", None)
    if account_key:
        return AccountKeySigner(service.account_name or "", account_key)
    if hasattr(credential, "get_token"):

        def fetch(start: datetime, expiry: datetime) -> UserDelegationKey:
            try:
                return service.get_user_delegation_key(start, expiry)
            except HttpResponseError as error:
                if error.status_code != 403:
                    raise
                # Not transient (a 503 would say "retry"): the identity lacks the role.
                raise StorageConfigurationError(
                    "the app's identity may not request a user delegation key to sign result "
                    "links; grant it Storage Blob Data Owner (or Storage Blob Delegator) on "
                    "the storage account, which infra/ does"
                ) from error

        return UserDelegationSigner(service.account_name or "", UserDelegationKeyCache(fetch))
    raise StorageConfigurationError(
        "result links need a storage connection string with an AccountKey, or an identity "
        "(AzureWebJobsStorage__blobServiceUri); a SAS-only connection string cannot sign them"
    )


class BlobStore:
    """Results and records in two containers, each created on first use."""

    _shared: BlobStore | None = None
    _shared_lock = threading.Lock()

    def __init__(self, service: BlobServiceClient, results: str, state: str) -> None:
        self._service = service
        self._results_name = results
        self._state_name = state
        # One client per container, made once: building one per call cost a measurable
        # share of each result write (bench: report_write's CPU).
        self._containers: dict[str, ContainerClient] = {}
        self._containers_lock = threading.Lock()
        self._signer: BlobSasSigner | None = None
        self._signer_lock = threading.Lock()

    @classmethod
    def from_settings(cls) -> BlobStore:
        """The process-wide store built from app settings (clients are thread-safe)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls(
                    _service_from_settings(),
                    get_setting("OPS_RESULTS_CONTAINER") or "operation-results",
                    get_setting("OPS_STATE_CONTAINER") or "operation-state",
                )
            return cls._shared

    def _container(self, name: str) -> ContainerClient:
        client = self._containers.get(name)
        if client is not None:
            return client
        with self._containers_lock:
            client = self._containers.get(name)
            if client is None:
                client = self._service.get_container_client(name)
                with contextlib.suppress(ResourceExistsError):
                    client.create_container()
                self._containers[name] = client
        return client

    @property
    def results(self) -> ContainerClient:
        """The results container."""
        return self._container(self._results_name)

    @property
    def state(self) -> ContainerClient:
        """The state container (idempotency keys, tombstones, webhook outbox)."""
        return self._container(self._state_name)

    # results ---------------------------------------------------------------------------

    def write_blob(
        self, name: str, data: bytes | Iterable[bytes], content_type: str
    ) -> dict[str, Any]:
        """Write (overwrite) one result blob; an iterable is streamed block by block."""
        blob = self.results.get_blob_client(name)
        properties = blob.upload_blob(
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
            max_concurrency=2,
        )
        size = len(data) if isinstance(data, bytes) else blob.get_blob_properties().size
        return {"blob": name, "etag": properties.get("etag"), "bytes": size}

    def open_result(self, name: str) -> ResultBlob | None:
        """A result blob ready to stream, or None if it does not exist."""
        blob = self.results.get_blob_client(name)
        try:
            downloader = blob.download_blob(max_concurrency=1)
        except ResourceNotFoundError:
            return None
        properties = downloader.properties
        content_type = properties.content_settings.content_type or "application/octet-stream"
        return ResultBlob(
            name=name,
            content_type=content_type,
            etag=str(properties.etag),
            size=int(properties.size),
            chunks=downloader.chunks(),
        )

    def result_info(self, name: str) -> ResultInfo | None:
        """A result blob's size, type and ETag without its bytes, or None if it is missing."""
        try:
            properties = self.results.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return ResultInfo(
            name=name,
            content_type=properties.content_settings.content_type or "application/octet-stream",
            etag=str(properties.etag),
            size=int(properties.size),
        )

    def result_read_url(
        self,
        name: str,
        *,
        lifetime: timedelta,
        content_type: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """A read-only SAS URL of a result blob, valid for `lifetime` from `now`.

        On storage's own origin (Azurite: http://127.0.0.1:10000/devstoreaccount1/...);
        `content_type` overrides the Content-Type storage answers with.
        """
        with self._signer_lock:
            if self._signer is None:
                self._signer = _sas_signer(self._service)
        return read_url(
            self.results.get_blob_client(name),
            self._signer,
            now=now or datetime.now(UTC),
            lifetime=lifetime,
            content_type=content_type,
        )

    def result_etag(self, name: str) -> str | None:
        """The ETag of a result blob without downloading it, or None if it is missing."""
        try:
            return str(self.results.get_blob_client(name).get_blob_properties().etag)
        except ResourceNotFoundError:
            return None

    def delete_operation_blobs(self, operation_id: str) -> int:
        """Delete every blob under `<operation id>/`; how many were deleted."""
        container = self.results
        names = [b.name for b in container.list_blobs(name_starts_with=f"{operation_id}/")]
        for name in names:
            with contextlib.suppress(ResourceNotFoundError):
                container.delete_blob(name)
        return len(names)

    # records ---------------------------------------------------------------------------

    def read_record(self, name: str) -> JsonRecord | None:
        """A JSON record from the state container, or None."""
        try:
            downloader = self.state.get_blob_client(name).download_blob()
        except ResourceNotFoundError:
            return None
        body = json.loads(downloader.readall())
        return JsonRecord(body=body, etag=str(downloader.properties.etag))

    def create_record(self, name: str, body: dict[str, Any]) -> bool:
        """Create a record only if none exists (If-None-Match: *); False if one did."""
        try:
            self.state.get_blob_client(name).upload_blob(
                json.dumps(body).encode(),
                overwrite=False,
                content_settings=ContentSettings(content_type="application/json"),
            )
        except ResourceExistsError:
            return False
        return True

    def replace_record(self, name: str, body: dict[str, Any], etag: str | None) -> bool:
        """Replace a record if it is unchanged since `etag` (None: unconditionally);
        False when someone else changed it first."""
        blob = self.state.get_blob_client(name)
        options: dict[str, Any] = {}
        if etag is not None:
            options = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            blob.upload_blob(
                json.dumps(body).encode(),
                overwrite=True,
                content_settings=ContentSettings(content_type="application/json"),
                **options,
            )
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
            return False
        return True

    def delete_record(self, name: str) -> None:
        """Delete a record if it exists."""
        with contextlib.suppress(ResourceNotFoundError):
            self.state.delete_blob(name)

    def list_records(self, prefix: str) -> list[str]:
        """Names of the records under a prefix."""
        return [b.name for b in self.state.list_blobs(name_starts_with=prefix)]
