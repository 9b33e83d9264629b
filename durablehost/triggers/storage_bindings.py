"""Storage clients, queue message encoding, and the queue and blob bindings of functions.

`StorageClients` opens one async client per connection and service (the SDKs' own
connection pools), `StorageBindings` is the invoker's `BindingSupplier`: blob input
bindings are read before a call, queue and blob output bindings (named `func.Out`
parameters and `$return`) are written after it, with `{name}` expressions resolved from
the trigger's binding data. A binding of another kind (Service Bus, Cosmos DB, tables...)
is named in a warning at start and raises BindingError when the function uses it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import inspect
import json
import logging
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

from durablehost.app.invocation import (
    BindingError,
    InvocationPlan,
    InvocationResult,
    is_output_binding,
)
from durablehost.app.loader import FunctionInfo
from durablehost.errors import ConfigError
from durablehost.triggers.binding_expressions import resolve_template, split_blob_path
from durablehost.triggers.storage_connections import StorageConnection, resolve_connection

__all__ = [
    "MessageEncoding",
    "StorageBindings",
    "StorageClients",
    "decode_message",
    "encode_message",
    "parameter_type",
    "unsupported_bindings",
    "warn_unsupported",
]

log = logging.getLogger(__name__)

MessageEncoding = typing.Literal["base64", "none"]
# Binding types a function may have besides its trigger that durablehost serves.
_SERVED = {"durableClient", "http", "queue", "blob"}
# The storage SDKs retry with waits of up to ~20 s by default; a local emulator that does
# not answer should show up in the log within seconds.
_RETRY_TOTAL = 2


def encode_message(content: str | bytes, encoding: MessageEncoding) -> str:
    """A message body as the queue stores it: base64 of its bytes, or the text as is."""
    if encoding == "base64":
        raw = content.encode("utf-8") if isinstance(content, str) else content
        return base64.b64encode(raw).decode("ascii")
    if isinstance(content, bytes):
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise BindingError(
                "a bytes queue message that is not UTF-8 cannot be sent with "
                "messageEncoding 'none': use base64"
            ) from None
    return content


def decode_message(stored: str, encoding: MessageEncoding) -> str | bytes:
    """The body a function receives: text when it is UTF-8, else bytes.

    Raises ValueError for a message that is not base64 under base64 encoding.
    """
    if encoding == "none":
        return stored
    try:
        raw = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the message is not valid base64 (host.json messageEncoding)") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def parameter_type(info: FunctionInfo, name: str) -> Any:
    """The annotation of parameter `name` (resolved when written as a string), or None."""
    try:
        hints = typing.get_type_hints(info.user_function)
    except Exception:  # an annotation naming something the module cannot resolve
        hints = {}
    if name in hints:
        return hints[name]
    try:
        annotation = inspect.signature(info.user_function).parameters[name].annotation
    except (KeyError, TypeError, ValueError):
        return None
    return None if annotation is inspect.Parameter.empty else annotation


class StorageClients:
    """One async blob and queue service client per connection, closed together."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # The SDKs log every request at INFO; polling would fill the host's log.
            logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(
                logging.WARNING
            )
        self._blob: dict[str, Any] = {}
        self._queue: dict[str, Any] = {}
        self._credentials: list[Any] = []
        # (queue URL, queue name) written to by this host: listeners on it wake up.
        self.on_queue_write: Callable[[str, str], None] | None = None

    def connection(self, name: str | None) -> StorageConnection:
        """The resolved connection; ConfigError when its settings are missing."""
        return resolve_connection(name, self._environ)

    def _credential(self, connection: StorageConnection) -> Any:
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential(managed_identity_client_id=connection.client_id)
        self._credentials.append(credential)
        return credential

    def blob_service(self, connection: StorageConnection) -> Any:
        """The `azure.storage.blob.aio.BlobServiceClient` of this connection."""
        from azure.storage.blob.aio import BlobServiceClient

        client = self._blob.get(connection.setting)
        if client is None:
            if connection.connection_string is not None:
                client = BlobServiceClient.from_connection_string(
                    connection.connection_string, retry_total=_RETRY_TOTAL
                )
            else:
                client = BlobServiceClient(
                    connection.service_url("blob"),
                    credential=self._credential(connection),
                    retry_total=_RETRY_TOTAL,
                )
            self._blob[connection.setting] = client
        return client

    def queue_service(self, connection: StorageConnection) -> Any:
        """The `azure.storage.queue.aio.QueueServiceClient` of this connection (messages
        are sent and received as stored: encoding is done here, per host.json)."""
        from azure.storage.queue.aio import QueueServiceClient

        client = self._queue.get(connection.setting)
        if client is None:
            if connection.connection_string is not None:
                client = QueueServiceClient.from_connection_string(
                    connection.connection_string, retry_total=_RETRY_TOTAL
                )
            else:
                client = QueueServiceClient(
                    connection.service_url("queue"),
                    credential=self._credential(connection),
                    retry_total=_RETRY_TOTAL,
                )
            self._queue[connection.setting] = client
        return client

    async def send(self, connection: StorageConnection, queue_name: str, stored: str) -> None:
        """Send one already-encoded message, creating the queue when it does not exist."""
        queue = self.queue_service(connection).get_queue_client(queue_name)
        try:
            await queue.send_message(stored)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):  # created meanwhile elsewhere
                await queue.create_queue()
            await queue.send_message(stored)
        if self.on_queue_write is not None:
            self.on_queue_write(connection.service_url("queue"), queue_name)

    async def upload(
        self, connection: StorageConnection, container: str, blob: str, data: bytes, **kwargs: Any
    ) -> None:
        """Write a blob (overwriting), creating its container when it does not exist."""
        client = self.blob_service(connection).get_blob_client(container, blob)
        try:
            await client.upload_blob(data, overwrite=True, **kwargs)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                await self.blob_service(connection).create_container(container)
            await client.upload_blob(data, overwrite=True, **kwargs)

    async def close(self) -> None:
        """Close every client and credential opened."""
        for client in [*self._blob.values(), *self._queue.values(), *self._credentials]:
            try:
                await client.close()
            except Exception as exc:  # closing must not hide why the host stops
                log.debug("closing a storage client: %s", exc)
        self._blob.clear()
        self._queue.clear()
        self._credentials.clear()


def unsupported_bindings(info: FunctionInfo) -> list[str]:
    """`type 'name'` of each binding of `info` (other than its trigger) durablehost does
    not serve; the function fails when it uses one."""
    found = []
    for binding in info.bindings:
        name = str(getattr(binding, "name", ""))
        binding_type = str(getattr(binding, "type", ""))
        if name == info.trigger_param:
            continue
        if binding_type == "queue" and not is_output_binding(binding):
            found.append(f"{binding_type} input '{name}'")
        elif binding_type not in _SERVED:
            found.append(f"{binding_type} '{name}'")
    return found


def _queue_items(value: Any, what: str) -> list[str | bytes]:
    if isinstance(value, str | bytes):
        return [value]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, dict):
        return [json.dumps(value)]
    if isinstance(value, Iterable):
        items: list[str | bytes] = []
        for item in value:
            items.extend(_queue_items(item, what))
        return items
    raise BindingError(
        f"{what}: a queue message must be str, bytes, a dict, a func.QueueMessage or a "
        f"list of them, not {type(value).__name__}"
    )


def _blob_bytes(value: Any, what: str) -> bytes:
    if callable(getattr(value, "read", None)):
        value = value.read()
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise BindingError(
        f"{what}: a blob must be str, bytes or a readable stream, not {type(value).__name__}"
    )


class StorageBindings:
    """The invoker's BindingSupplier for storage: blob inputs, queue and blob outputs."""

    def __init__(self, clients: StorageClients, *, encoding: MessageEncoding = "base64") -> None:
        self._clients = clients
        self._encoding = encoding

    def _connection(self, binding: Any, what: str) -> StorageConnection:
        try:
            return self._clients.connection(getattr(binding, "connection", None))
        except ConfigError as exc:
            raise BindingError(f"{what}: {exc}") from None

    async def read_inputs(
        self, plan: InvocationPlan, binding_data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Blob inputs by parameter name (None for a blob that does not exist)."""
        info = plan.info
        values: dict[str, Any] = {}
        for binding in info.bindings:
            name = str(getattr(binding, "name", ""))
            if name not in plan.unsupported_inputs:
                continue
            binding_type = str(getattr(binding, "type", ""))
            what = f"function {info.function_name}: {binding_type} input '{name}'"
            if binding_type != "blob":
                raise BindingError(f"{what} is a binding durablehost does not run")
            values[name] = await self._read_blob(info, binding, binding_data, what)
        return values

    async def _read_blob(
        self, info: FunctionInfo, binding: Any, binding_data: Mapping[str, Any], what: str
    ) -> Any:
        path = resolve_template(str(getattr(binding, "path", "")), binding_data, what=what)
        container, blob = split_blob_path(path, what=what)
        connection = self._connection(binding, what)
        client = self._clients.blob_service(connection).get_blob_client(container, blob)
        try:
            downloader = await client.download_blob()
            data: bytes = await downloader.readall()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise BindingError(f"{what}: reading blob {path!r} failed: {exc}") from exc
        wanted = parameter_type(info, str(binding.name))
        if wanted is str:
            return data.decode("utf-8")
        if wanted is bytes:
            return data
        return func.blob.InputStream(data=data, name=path, length=len(data), uri=client.url)

    async def write_outputs(
        self, plan: InvocationPlan, result: InvocationResult, binding_data: Mapping[str, Any]
    ) -> None:
        """Send queue messages and upload blobs the function set; BindingError for an
        output of a kind durablehost does not run that the function set."""
        info = plan.info
        for binding in info.bindings:
            name = str(getattr(binding, "name", ""))
            binding_type = str(getattr(binding, "type", ""))
            if name == info.trigger_param or binding_type in ("http", "durableClient"):
                continue
            if name == "$return":
                value = result.return_value
                if value is None:
                    continue
            elif name in result.outputs and result.outputs[name].was_set:
                value = result.outputs[name].get()
            else:
                continue
            what = f"function {info.function_name}: {binding_type} output '{name}'"
            if binding_type == "queue":
                await self._send(binding, value, binding_data, what)
            elif binding_type == "blob":
                await self._upload(binding, value, binding_data, what)
            else:
                raise BindingError(f"{what} is a binding durablehost does not run")

    async def _send(
        self, binding: Any, value: Any, binding_data: Mapping[str, Any], what: str
    ) -> None:
        queue_name = resolve_template(
            str(getattr(binding, "queue_name", "")), binding_data, what=what
        ).lower()
        connection = self._connection(binding, what)
        items = _queue_items(value, what)
        try:
            for item in items:
                await self._clients.send(
                    connection, queue_name, encode_message(item, self._encoding)
                )
        except AzureError as exc:
            raise BindingError(f"{what}: sending to queue {queue_name!r} failed: {exc}") from exc

    async def _upload(
        self, binding: Any, value: Any, binding_data: Mapping[str, Any], what: str
    ) -> None:
        path = resolve_template(str(getattr(binding, "path", "")), binding_data, what=what)
        container, blob = split_blob_path(path, what=what)
        data = _blob_bytes(value, what)
        try:
            await self._clients.upload(self._connection(binding, what), container, blob, data)
        except AzureError as exc:
            raise BindingError(f"{what}: writing blob {path!r} failed: {exc}") from exc


def warn_unsupported(functions: Sequence[FunctionInfo]) -> None:
    """Log one warning per function with bindings durablehost does not serve."""
    for info in functions:
        names = unsupported_bindings(info)
        if names:
            log.warning(
                "function %s has bindings durablehost does not run (%s); it fails when it "
                "uses them",
                info.function_name,
                ", ".join(names),
            )
