"""Queue triggers: poll Azure Storage queues (Azurite locally) as the Functions host does.

Per queue-triggered function, one listener:

- receives up to `batchSize` messages at a time, each hidden for 10 minutes while its
  invocation runs (renewed every 5 minutes), and asks for more while the messages in
  progress are at most `newBatchThreshold`;
- polls with the host's randomized exponential backoff: 100 ms after a batch, growing
  towards `maxPollingInterval` while the queue is empty; a message this host sends to the
  queue (an output binding) wakes the listener at once;
- decodes the body per `messageEncoding` (base64, or none) and hands the function a
  `func.QueueMessage` built by the worker's own `queueTrigger` converter (id, body,
  dequeue_count, insertion_time, expiration_time, time_next_visible, pop_receipt);
- deletes the message when the function succeeds; after a failure makes it visible again
  after `visibilityTimeout`, or moves it to `<queue>-poison` once its dequeue count
  reached `maxDequeueCount`. A message that cannot be decoded goes to the poison queue at
  once. Delivery is at least once: a host stopped or killed mid-invocation leaves the
  message to come back.

Settings come from host.json `extensions.queues`; see docs/durablehost.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.functions.meta import Datum

from durablehost.app.config import resolve_app_setting
from durablehost.app.invocation import FunctionInvoker, InvocationPlan, plan_invocation
from durablehost.app.loader import FunctionInfo
from durablehost.errors import ConfigError
from durablehost.triggers.storage_bindings import (
    MessageEncoding,
    StorageClients,
    decode_message,
    parameter_type,
)
from durablehost.triggers.storage_connections import StorageConnection
from durablehost.triggers.trigger_tasks import TriggerTasks

__all__ = ["QueueOptions", "QueueTriggerService", "parse_timespan", "poison_queue_name"]

log = logging.getLogger(__name__)

# How long a received message stays hidden while its invocation runs, and how often that
# is renewed: the host's values.
_PROCESSING_VISIBILITY_SECONDS = 600
_RENEW_EVERY_SECONDS = 300
_MIN_POLL_SECONDS = 0.1
_QUEUE_NAME_RE = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_TIMESPAN_RE = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_timespan(value: Any, what: str, *, number_unit: float | None = None) -> float:
    """Seconds in a host.json TimeSpan (`hh:mm:ss[.fff]`, `d.hh:mm:ss`); a plain number is
    read in `number_unit` seconds when given (maxPollingInterval: milliseconds)."""
    if number_unit is not None and isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) * number_unit
    else:
        found = _TIMESPAN_RE.match(str(value).strip()) if isinstance(value, str) else None
        if found is None:
            raise ConfigError(f"{what} must be a TimeSpan like '00:00:30', not {value!r}")
        days, hours, minutes, secs = found.groups()
        seconds = (int(days or 0) * 24 + int(hours)) * 3600 + int(minutes) * 60 + float(secs)
    if seconds < 0:
        raise ConfigError(f"{what} must not be negative")
    return seconds


def _int_setting(section: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"host.json extensions.queues.{key} must be an integer from {low} to {high}, "
            f"not {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """host.json `extensions.queues`, with the Functions host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: MessageEncoding = "base64"

    @classmethod
    def from_extensions(cls, extensions: Mapping[str, Any]) -> QueueOptions:
        """Read `extensions.queues`; ConfigError naming the setting when one is bad."""
        section = extensions.get("queues") or {}
        if not isinstance(section, Mapping):
            raise ConfigError("host.json extensions.queues must be a JSON object")
        batch_size = _int_setting(section, "batchSize", 16, 1, 32)
        # The host's default: half a batch per processor.
        default_threshold = (os.cpu_count() or 1) * batch_size // 2
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ConfigError(
                "host.json extensions.queues.messageEncoding must be 'base64' or 'none', "
                f"not {section.get('messageEncoding')!r}"
            )
        max_polling = parse_timespan(
            section.get("maxPollingInterval", "00:01:00"),
            "host.json extensions.queues.maxPollingInterval",
            number_unit=0.001,
        )
        return cls(
            batch_size=batch_size,
            new_batch_threshold=_int_setting(
                section, "newBatchThreshold", default_threshold, 0, 10_000
            ),
            max_polling_interval=max(max_polling, _MIN_POLL_SECONDS),
            visibility_timeout=parse_timespan(
                section.get("visibilityTimeout", "00:00:00"),
                "host.json extensions.queues.visibilityTimeout",
            ),
            max_dequeue_count=_int_setting(section, "maxDequeueCount", 5, 1, 10_000),
            message_encoding="none" if encoding == "none" else "base64",
        )


def poison_queue_name(queue_name: str) -> str:
    """Where messages that failed `maxDequeueCount` times go, as in the host."""
    return f"{queue_name}-poison"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _trigger_metadata(message: Any) -> dict[str, Datum]:
    # As the Functions host sends them to the worker: strings, and JSON for the rest.
    metadata = {
        "Id": Datum(message.id, "string"),
        "PopReceipt": Datum(message.pop_receipt, "string"),
        "DequeueCount": Datum(json.dumps(message.dequeue_count), "json"),
    }
    for field, moment in (
        ("InsertionTime", message.inserted_on),
        ("ExpirationTime", message.expires_on),
        ("NextVisibleTime", message.next_visible_on),
    ):
        if moment is not None:
            metadata[field] = Datum(json.dumps(_iso(moment)), "json")
    return metadata


def _binding_data(message: Any, body: str | bytes) -> dict[str, Any]:
    text = body if isinstance(body, str) else body.decode("utf-8", "replace")
    data: dict[str, Any] = {}
    # A JSON object's properties are binding data ({orderId}), as in the host.
    with contextlib.suppress(ValueError):
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            data.update(parsed)
    data.update(
        QueueTrigger=text,
        Id=message.id,
        DequeueCount=message.dequeue_count,
        PopReceipt=message.pop_receipt,
        InsertionTime=_iso(message.inserted_on),
        ExpirationTime=_iso(message.expires_on),
        NextVisibleTime=_iso(message.next_visible_on),
    )
    return data


class _Backoff:
    """The host's randomized exponential polling backoff between two bounds."""

    def __init__(self, maximum: float) -> None:
        self._maximum = maximum
        self._delay = _MIN_POLL_SECONDS

    def found(self) -> float:
        self._delay = _MIN_POLL_SECONDS
        return self._delay

    def empty(self) -> float:
        grown = self._delay * 2 * random.uniform(0.8, 1.2)
        self._delay = min(self._maximum, max(_MIN_POLL_SECONDS, grown))
        return self._delay


class _QueueListener:
    def __init__(
        self,
        info: FunctionInfo,
        service: QueueTriggerService,
        connection: StorageConnection,
        queue_name: str,
    ) -> None:
        self.info = info
        self.plan: InvocationPlan = plan_invocation(info)
        self.queue_name = queue_name
        self.connection = connection
        self._service = service
        self._options = service.options
        self._queue = service.clients.queue_service(connection).get_queue_client(queue_name)
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wanted = parameter_type(info, info.trigger_param)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = _Backoff(self._options.max_polling_interval)
        try:
            while True:
                while len(self._in_flight) > self._options.new_batch_threshold:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                messages = await self._receive()
                for message in messages:
                    task = asyncio.create_task(self._process(message))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                delay = backoff.found() if messages else backoff.empty()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _receive(self) -> list[Any]:
        try:
            pages = self._queue.receive_messages(
                messages_per_page=self._options.batch_size,
                max_messages=self._options.batch_size,
                visibility_timeout=_PROCESSING_VISIBILITY_SECONDS,
            )
            return [message async for message in pages]
        except ResourceNotFoundError:
            return []  # the queue does not exist yet: as empty, like the host
        except AzureError as exc:
            log.warning(
                "queue %s (%s): receiving failed: %s", self.queue_name, self.info.function_name, exc
            )
            return []

    def _trigger_value(self, message: Any, body: str | bytes) -> Any:
        if self._wanted is str:
            return body if isinstance(body, str) else body.decode("utf-8", "replace")
        if self._wanted is bytes:
            return body.encode("utf-8") if isinstance(body, str) else body
        converter = func.get_binding_registry().get("queueTrigger")
        datum = Datum(body, "string" if isinstance(body, str) else "bytes")
        return converter.decode(datum, trigger_metadata=_trigger_metadata(message))

    async def _process(self, message: Any) -> None:
        name = self.info.function_name
        if message.dequeue_count > self._options.max_dequeue_count:
            # Failed before without reaching the poison step (the host stopped mid-way).
            await self._poison(message, f"dequeue count {message.dequeue_count}")
            return
        try:
            body = decode_message(message.content, self._options.message_encoding)
        except ValueError as exc:
            await self._poison(message, str(exc))
            return
        receipt = [message.pop_receipt]
        renewer = asyncio.create_task(self._keep_hidden(message, receipt))
        try:
            await self._service.invoker.invoke(
                self.plan,
                self._trigger_value(message, body),
                origin=self._service.origin(),
                binding_data=_binding_data(message, body),
            )
        except asyncio.CancelledError:
            renewer.cancel()
            # Stopping: let the message come back now rather than in 10 minutes.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._release(message, receipt[0], 0), 2)
            raise
        except Exception:
            renewer.cancel()
            log.exception(
                "Executed 'Functions.%s' (Failed, queue %s, message %s, dequeue count %s)",
                name,
                self.queue_name,
                message.id,
                message.dequeue_count,
            )
            if message.dequeue_count >= self._options.max_dequeue_count:
                await self._poison(message, f"failed {message.dequeue_count} times", receipt[0])
            else:
                await self._release(message, receipt[0], self._options.visibility_timeout)
            return
        renewer.cancel()
        log.info(
            "Executed 'Functions.%s' (Succeeded, queue %s, message %s)",
            name,
            self.queue_name,
            message.id,
        )
        try:
            await self._queue.delete_message(message.id, receipt[0])
        except AzureError as exc:
            log.warning(
                "queue %s: deleting message %s failed: %s", self.queue_name, message.id, exc
            )

    async def _keep_hidden(self, message: Any, receipt: list[str]) -> None:
        while True:
            await asyncio.sleep(_RENEW_EVERY_SECONDS)
            try:
                updated = await self._queue.update_message(
                    message.id, receipt[0], visibility_timeout=_PROCESSING_VISIBILITY_SECONDS
                )
            except AzureError as exc:
                log.warning(
                    "queue %s: keeping message %s hidden failed: %s",
                    self.queue_name,
                    message.id,
                    exc,
                )
                return
            receipt[0] = updated.pop_receipt

    async def _release(self, message: Any, pop_receipt: str, after: float) -> None:
        try:
            await self._queue.update_message(
                message.id, pop_receipt, visibility_timeout=round(after)
            )
        except AzureError as exc:
            log.warning(
                "queue %s: releasing message %s failed: %s", self.queue_name, message.id, exc
            )

    async def _poison(self, message: Any, why: str, pop_receipt: str | None = None) -> None:
        poison = poison_queue_name(self.queue_name)
        log.warning(
            "queue %s: message %s moved to %s (%s)", self.queue_name, message.id, poison, why
        )
        try:
            # The content as stored: it keeps its encoding.
            await self._service.clients.send(self.connection, poison, message.content)
            await self._queue.delete_message(message.id, pop_receipt or message.pop_receipt)
        except AzureError as exc:
            log.warning(
                "queue %s: moving message %s to %s failed: %s",
                self.queue_name,
                message.id,
                poison,
                exc,
            )


class QueueTriggerService:
    """Runs every queue-triggered function of the app."""

    def __init__(
        self,
        functions: Sequence[FunctionInfo],
        invoker: FunctionInvoker,
        clients: StorageClients,
        options: QueueOptions,
        *,
        origin: Callable[[], str],
    ) -> None:
        self.invoker = invoker
        self.clients = clients
        self.options = options
        self.origin = origin
        self.listeners: list[_QueueListener] = []
        self._tasks = TriggerTasks()
        for info in functions:
            listener = self._listener(info)
            if listener is not None:
                self.listeners.append(listener)

    def _listener(self, info: FunctionInfo) -> _QueueListener | None:
        trigger = info.trigger
        try:
            queue_name = resolve_app_setting(str(getattr(trigger, "queue_name", ""))).lower()
            if not _QUEUE_NAME_RE.match(queue_name):
                raise ConfigError(
                    f"queue name {queue_name!r} is not valid: 3-63 lowercase letters, digits "
                    "and single hyphens"
                )
            connection = self.clients.connection(getattr(trigger, "connection", None))
            connection.service_url("queue")
        except ConfigError as exc:
            # As the host: this function is in error, the others run.
            log.error("queue function %s will not run: %s", info.function_name, exc)
            return None
        return _QueueListener(info, self, connection, queue_name)

    def describe(self) -> list[tuple[str, str]]:
        """(function name, 'queueTrigger: <queue>') for the start-up banner."""
        return [
            (item.info.function_name, f"queueTrigger ({item.queue_name})")
            for item in self.listeners
        ]

    def wake(self, queue_url: str, queue_name: str) -> None:
        """A message was sent to this queue by this host: its listeners poll now."""
        for listener in self.listeners:
            if listener.queue_name == queue_name and listener.connection.queue_url == queue_url:
                listener.wake()

    async def start(self) -> None:
        """Start one listener per queue function."""
        for listener in self.listeners:
            self._tasks.start(f"queue:{listener.info.function_name}", listener.run())

    async def stop(self) -> None:
        """Stop polling; invocations in progress are cancelled and their messages released."""
        await self._tasks.stop()
