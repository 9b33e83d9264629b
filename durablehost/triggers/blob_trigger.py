"""Blob triggers: scan blob containers (Azurite locally) and run each new or changed blob once.

Per blob-triggered function, a scan of its container every few seconds lists the blobs
whose names match the trigger's `path` pattern (`samples-workitems/{name}`). A blob runs
the function once per version: success writes a receipt, as the Functions host does, at
`azure-webjobs-hosts/blobreceipts/<host id>/Host.Functions.<function>/<etag>/<container>/<blob>`
in the trigger's storage account. Receipts are read at start, so a blob processed before
a restart does not run again; a changed blob has a new ETag and runs again.

A failure is counted in the receipt's metadata (`FailureCount`) and the blob is tried again
at the next scan; after `extensions.blobs.poisonBlobThreshold` (default 5) failures a
message goes to the `webjobs-blobtrigger-poison` queue, as in the host, and the blob is
not tried again. The function receives a `func.InputStream` (name, uri, length, blob
properties and metadata), `str` or `bytes` when the parameter is annotated so; the path's
`{name}` values are binding data for its other bindings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.functions.meta import Datum

from durablehost.app.invocation import FunctionInvoker, InvocationPlan, plan_invocation
from durablehost.app.loader import FunctionInfo
from durablehost.errors import ConfigError
from durablehost.triggers.binding_expressions import BlobPathPattern
from durablehost.triggers.storage_bindings import (
    MessageEncoding,
    StorageClients,
    encode_message,
    parameter_type,
)
from durablehost.triggers.storage_connections import StorageConnection
from durablehost.triggers.trigger_tasks import TriggerTasks

__all__ = [
    "BLOB_POISON_QUEUE",
    "RECEIPTS_CONTAINER",
    "BlobTriggerService",
    "blob_host_id",
    "receipt_name",
]

log = logging.getLogger(__name__)

RECEIPTS_CONTAINER = "azure-webjobs-hosts"
BLOB_POISON_QUEUE = "webjobs-blobtrigger-poison"
# Seconds between two scans of a container; the host's own scan of small containers
# runs at about this pace.
SCAN_INTERVAL_SECONDS = 2.0
_DEFAULT_POISON_THRESHOLD = 5
_HOST_ID_RE = re.compile(r"[^a-z0-9-]")


def blob_host_id(app_name: str) -> str:
    """The host id receipts are kept under: `AzureFunctionsWebHost__hostid` when set, else
    the app's name lowercased to letters, digits and '-', at most 32 characters (as the
    host derives it from the site name)."""
    cleaned = _HOST_ID_RE.sub("-", app_name.lower()).strip("-")[:32].strip("-")
    return cleaned or "durablehost"


def receipt_name(host_id: str, function_name: str, etag: str, container: str, blob: str) -> str:
    """The receipt blob's name in RECEIPTS_CONTAINER for one version of one blob."""
    version = etag.strip('"')
    return f"blobreceipts/{host_id}/Host.Functions.{function_name}/{version}/{container}/{blob}"


def poison_threshold(extensions: Mapping[str, Any]) -> int:
    """host.json `extensions.blobs.poisonBlobThreshold` (default 5)."""
    section = extensions.get("blobs") or {}
    value = (
        section.get("poisonBlobThreshold", _DEFAULT_POISON_THRESHOLD)
        if isinstance(section, Mapping)
        else None
    )
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            "host.json extensions.blobs must be an object whose poisonBlobThreshold is a "
            f"positive integer, not {value!r}"
        )
    return value


@dataclass(slots=True)
class _Receipts:
    completed: set[tuple[str, str]] = field(default_factory=set)  # (etag, blob name)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)


class _BlobWatcher:
    def __init__(
        self,
        info: FunctionInfo,
        service: BlobTriggerService,
        connection: StorageConnection,
        pattern: BlobPathPattern,
    ) -> None:
        self.info = info
        self.plan: InvocationPlan = plan_invocation(info)
        self.pattern = pattern
        self.connection = connection
        self._service = service
        self._blobs = service.clients.blob_service(connection)
        self._receipts = _Receipts()
        self._receipt_prefix = (
            f"blobreceipts/{service.host_id}/Host.Functions.{info.function_name}/"
        )
        self._wanted = parameter_type(info, info.trigger_param)

    async def run(self) -> None:
        await self._load_receipts()
        while True:
            try:
                await self._scan()
            except Exception:  # a scan that broke must not end the trigger
                log.exception("scanning for blob function %s failed", self.info.function_name)
            await asyncio.sleep(SCAN_INTERVAL_SECONDS)

    async def _load_receipts(self) -> None:
        container = self._blobs.get_container_client(RECEIPTS_CONTAINER)
        try:
            async for item in container.list_blobs(
                name_starts_with=self._receipt_prefix, include=["metadata"]
            ):
                etag, _, rest = item.name[len(self._receipt_prefix) :].partition("/")
                _, _, blob = rest.partition("/")
                key = (etag, blob)
                metadata = item.metadata or {}
                if metadata.get("Completed") == "true":
                    self._receipts.completed.add(key)
                else:
                    with contextlib.suppress(ValueError):
                        self._receipts.failures[key] = int(metadata.get("FailureCount", "0"))
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            log.warning("blob receipts of %s could not be read: %s", self.info.function_name, exc)

    async def _scan(self) -> None:
        container = self._blobs.get_container_client(self.pattern.container)
        try:
            async for item in container.list_blobs(name_starts_with=self.pattern.prefix or None):
                values = self.pattern.match(item.name)
                if values is None:
                    continue
                key = (str(item.etag).strip('"'), item.name)
                if key in self._receipts.completed:
                    continue
                await self._process(item.name, values)
        except ResourceNotFoundError:
            return  # no container yet
        except AzureError as exc:
            log.warning("blob container %s could not be listed: %s", self.pattern.container, exc)

    def _trigger_value(self, data: bytes, path: str, uri: str, properties: Any) -> Any:
        if self._wanted is bytes:
            return data
        if self._wanted is str:
            return data.decode("utf-8")
        metadata = {
            "BlobTrigger": Datum(path, "string"),
            "Uri": Datum(uri, "string"),
            "Properties": Datum(json.dumps(_properties(properties)), "json"),
            "Metadata": Datum(json.dumps(dict(properties.metadata or {})), "json"),
        }
        converter = func.get_binding_registry().get("blobTrigger")
        return converter.decode(Datum(data, "bytes"), trigger_metadata=metadata)

    async def _process(self, blob: str, values: Mapping[str, str]) -> None:
        name = self.info.function_name
        path = f"{self.pattern.container}/{blob}"
        client = self._blobs.get_blob_client(self.pattern.container, blob)
        try:
            downloader = await client.download_blob()
            data: bytes = await downloader.readall()
        except ResourceNotFoundError:
            return  # deleted since it was listed
        properties = downloader.properties
        etag = str(properties.etag).strip('"')
        key = (etag, blob)
        binding_data = {**values, "BlobTrigger": path, "Uri": client.url}
        try:
            await self._service.invoker.invoke(
                self.plan,
                self._trigger_value(data, path, client.url, properties),
                origin=self._service.origin(),
                binding_data=binding_data,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            failures = self._receipts.failures.get(key, 0) + 1
            self._receipts.failures[key] = failures
            log.exception("Executed 'Functions.%s' (Failed, blob %s, try %d)", name, path, failures)
            if failures >= self._service.poison_threshold:
                await self._poison(blob, etag)
                await self._write_receipt(key, {"Completed": "true", "Poisoned": "true"})
                self._receipts.completed.add(key)
            else:
                await self._write_receipt(key, {"FailureCount": str(failures)})
            return
        log.info("Executed 'Functions.%s' (Succeeded, blob %s)", name, path)
        await self._write_receipt(key, {"Completed": "true"})
        self._receipts.completed.add(key)
        self._receipts.failures.pop(key, None)

    async def _write_receipt(self, key: tuple[str, str], metadata: dict[str, str]) -> None:
        etag, blob = key
        name = receipt_name(
            self._service.host_id, self.info.function_name, etag, self.pattern.container, blob
        )
        try:
            await self._service.clients.upload(
                self.connection, RECEIPTS_CONTAINER, name, b"", metadata=metadata
            )
        except AzureError as exc:
            # In memory it is done; after a restart the blob may run once more (at least once).
            log.warning("blob receipt %s could not be written: %s", name, exc)

    async def _poison(self, blob: str, etag: str) -> None:
        message = {
            "Type": "BlobTrigger",
            "FunctionId": f"Host.Functions.{self.info.function_name}",
            "BlobType": "BlockBlob",
            "ContainerName": self.pattern.container,
            "BlobName": blob,
            "ETag": f'"{etag}"',
        }
        log.warning(
            "blob %s/%s failed %d times: message sent to %s",
            self.pattern.container,
            blob,
            self._service.poison_threshold,
            BLOB_POISON_QUEUE,
        )
        try:
            await self._service.clients.send(
                self.connection,
                BLOB_POISON_QUEUE,
                encode_message(json.dumps(message), self._service.encoding),
            )
        except (AzureError, ConfigError) as exc:
            log.warning("the blob poison message could not be sent: %s", exc)


def _properties(properties: Any) -> dict[str, Any]:
    settings = getattr(properties, "content_settings", None)
    last_modified = getattr(properties, "last_modified", None)
    return {
        "ContentLength": getattr(properties, "size", None),
        "ContentType": getattr(settings, "content_type", None),
        "ETag": str(getattr(properties, "etag", "")),
        "LastModified": last_modified.isoformat() if last_modified else None,
        "BlobType": str(getattr(properties, "blob_type", "BlockBlob")),
    }


class BlobTriggerService:
    """Runs every blob-triggered function of the app."""

    def __init__(
        self,
        functions: Sequence[FunctionInfo],
        invoker: FunctionInvoker,
        clients: StorageClients,
        *,
        origin: Callable[[], str],
        host_id: str,
        poison_threshold: int = _DEFAULT_POISON_THRESHOLD,
        encoding: MessageEncoding = "base64",
    ) -> None:
        self.invoker = invoker
        self.clients = clients
        self.origin = origin
        self.host_id = host_id
        self.poison_threshold = poison_threshold
        self.encoding = encoding
        self.watchers: list[_BlobWatcher] = []
        self._tasks = TriggerTasks()
        for info in functions:
            watcher = self._watcher(info)
            if watcher is not None:
                self.watchers.append(watcher)

    def _watcher(self, info: FunctionInfo) -> _BlobWatcher | None:
        trigger = info.trigger
        try:
            pattern = BlobPathPattern.parse(str(getattr(trigger, "path", "")))
            connection = self.clients.connection(getattr(trigger, "connection", None))
            connection.service_url("blob")
        except ConfigError as exc:
            log.error("blob function %s will not run: %s", info.function_name, exc)
            return None
        if str(getattr(trigger, "source", "") or "").lower() == "eventgrid":
            log.warning(
                "blob function %s asks for Event Grid events; durablehost scans the "
                "container instead",
                info.function_name,
            )
        return _BlobWatcher(info, self, connection, pattern)

    def describe(self) -> list[tuple[str, str]]:
        """(function name, 'blobTrigger (<path>)') for the start-up banner."""
        return [(w.info.function_name, f"blobTrigger ({w.pattern.text})") for w in self.watchers]

    async def start(self) -> None:
        """Start one scanner per blob function."""
        for watcher in self.watchers:
            self._tasks.start(f"blob:{watcher.info.function_name}", watcher.run())

    async def stop(self) -> None:
        """Stop scanning; an invocation in progress is cancelled (its blob runs again)."""
        await self._tasks.stop()
