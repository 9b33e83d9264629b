"""Queue and blob triggers and storage bindings, composed for the host.

storage = StorageTriggers(config.extensions, app_name="myapp")   # reads host.json
invoker = FunctionInvoker(..., bindings=storage.bindings)        # outputs, blob inputs
storage.attach(invoker, index, queues=..., blobs=..., origin=lambda: host.url)
await storage.start() ... await storage.stop()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from durablehost.app.invocation import FunctionInvoker
from durablehost.app.loader import FunctionIndex, FunctionInfo
from durablehost.triggers.blob_trigger import BlobTriggerService, blob_host_id, poison_threshold
from durablehost.triggers.queue_trigger import QueueOptions, QueueTriggerService
from durablehost.triggers.storage_bindings import StorageBindings, StorageClients, warn_unsupported

__all__ = ["StorageTriggers"]


class StorageTriggers:
    """The queue and blob trigger services and the storage bindings of one app."""

    def __init__(self, extensions: Mapping[str, Any], *, app_name: str) -> None:
        self.clients = StorageClients()
        # Read now, so a bad host.json section stops the start before anything runs.
        self.queue_options = QueueOptions.from_extensions(extensions)
        self._poison_threshold = poison_threshold(extensions)
        # The host's own setting name, mixed case as the host spells it.
        host_id = os.environ.get("AzureFunctionsWebHost__hostid")  # noqa: SIM112
        self._host_id = blob_host_id(host_id or app_name)
        self.bindings = StorageBindings(self.clients, encoding=self.queue_options.message_encoding)
        self.queues: QueueTriggerService | None = None
        self.blobs: BlobTriggerService | None = None

    def attach(
        self,
        invoker: FunctionInvoker,
        index: FunctionIndex,
        *,
        queues: Sequence[FunctionInfo],
        blobs: Sequence[FunctionInfo],
        origin: Callable[[], str],
    ) -> None:
        """Build the trigger services for these (enabled) functions; warn, once, about
        every function's bindings durablehost does not run."""
        warn_unsupported([*index.http, *index.timers, *index.queues, *index.blobs])
        self.queues = QueueTriggerService(
            queues, invoker, self.clients, self.queue_options, origin=origin
        )
        self.blobs = BlobTriggerService(
            blobs,
            invoker,
            self.clients,
            origin=origin,
            host_id=self._host_id,
            poison_threshold=self._poison_threshold,
            encoding=self.queue_options.message_encoding,
        )
        self.clients.on_queue_write = self.queues.wake

    def describe(self) -> list[tuple[str, str]]:
        """(function name, trigger description) of every running queue and blob function."""
        rows: list[tuple[str, str]] = []
        if self.queues is not None:
            rows.extend(self.queues.describe())
        if self.blobs is not None:
            rows.extend(self.blobs.describe())
        return rows

    async def start(self) -> None:
        """Start polling queues and scanning containers."""
        if self.queues is not None:
            await self.queues.start()
        if self.blobs is not None:
            await self.blobs.start()

    async def stop(self) -> None:
        """Stop the triggers, then close the storage clients; safe to call more than once."""
        if self.queues is not None:
            await self.queues.stop()
        if self.blobs is not None:
            await self.blobs.stop()
        await self.clients.close()
