"""Storage connections, resolved from app settings as the Functions host resolves them.

A binding's `connection` names an app setting (an environment variable here):

- unset or empty: `AzureWebJobsStorage`;
- `X`: the setting `X`, else `AzureWebJobsX` (the host's prefix fallback);
- a connection string (`UseDevelopmentStorage=true` is Azurite on its default ports,
  10000 blob and 10001 queue, or on `DevelopmentStorageProxyUri`);
- or identity settings under that name: `X__serviceUri` (the endpoint of the service the
  binding uses), `X__blobServiceUri` / `X__queueServiceUri`, or `X__accountName`, with
  `X__clientId` picking a user-assigned identity. These use `DefaultAzureCredential`.

Nothing here opens a connection: `resolve_connection` is pure and unit-tested.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from durablehost.errors import ConfigError

__all__ = [
    "DEFAULT_CONNECTION_SETTING",
    "DEVELOPMENT_ACCOUNT",
    "DEVELOPMENT_KEY",
    "StorageConnection",
    "parse_connection_string",
    "resolve_connection",
]

DEFAULT_CONNECTION_SETTING = "AzureWebJobsStorage"
# The storage emulator's well-known development account (public, not a secret).
DEVELOPMENT_ACCOUNT = "devstoreaccount1"
DEVELOPMENT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_DEVELOPMENT_PORTS = {"blob": 10000, "queue": 10001}


@dataclass(frozen=True, slots=True)
class StorageConnection:
    """Where one connection's blob and queue services are and how to authenticate.

    `connection_string` is set for key-based connections (the SDKs' from_connection_string
    reads it); identity connections carry service URLs and use DefaultAzureCredential.
    """

    setting: str
    blob_url: str | None
    queue_url: str | None
    connection_string: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        """True for `__serviceUri`-style settings (no key: DefaultAzureCredential)."""
        return self.connection_string is None

    def service_url(self, service: str) -> str:
        """The blob or queue endpoint; ConfigError naming the setting when it has none."""
        url = self.blob_url if service == "blob" else self.queue_url
        if not url:
            raise ConfigError(
                f"storage connection '{self.setting}' has no {service} endpoint: add "
                f"{service.capitalize()}Endpoint to the connection string, or set "
                f"{self.setting}__{service}ServiceUri"
            )
        return url


def parse_connection_string(text: str) -> dict[str, str]:
    """`Key=Value;...` into a dict; keys as written. Values may contain '='."""
    parts: dict[str, str] = {}
    for piece in text.split(";"):
        piece = piece.strip()
        if not piece:
            continue
        key, sep, value = piece.partition("=")
        if not sep:
            raise ConfigError(f"storage connection string part {key!r} is not Key=Value")
        parts[key.strip()] = value.strip()
    return parts


def _development_string(proxy: str | None) -> str:
    if proxy:
        base = proxy.rstrip("/")
        blob = queue = f"{base}/{DEVELOPMENT_ACCOUNT}"
    else:
        blob = f"http://127.0.0.1:{_DEVELOPMENT_PORTS['blob']}/{DEVELOPMENT_ACCOUNT}"
        queue = f"http://127.0.0.1:{_DEVELOPMENT_PORTS['queue']}/{DEVELOPMENT_ACCOUNT}"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEVELOPMENT_ACCOUNT};"
        f"AccountKey={DEVELOPMENT_KEY};BlobEndpoint={blob};QueueEndpoint={queue};"
    )


def _from_connection_string(setting: str, text: str) -> StorageConnection:
    parts = {key.lower(): value for key, value in parse_connection_string(text).items()}
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        text = _development_string(parts.get("developmentstorageproxyuri"))
        parts = {key.lower(): value for key, value in parse_connection_string(text).items()}
    endpoints: dict[str, str | None] = {}
    for service in ("blob", "queue"):
        explicit = parts.get(f"{service}endpoint")
        account = parts.get("accountname")
        if explicit:
            endpoints[service] = explicit.rstrip("/")
        elif account:
            protocol = parts.get("defaultendpointsprotocol", "https")
            suffix = parts.get("endpointsuffix", "core.windows.net")
            endpoints[service] = f"{protocol}://{account}.{service}.{suffix}"
        else:
            endpoints[service] = None
    return StorageConnection(
        setting=setting,
        blob_url=endpoints["blob"],
        queue_url=endpoints["queue"],
        connection_string=text,
    )


def _identity_settings(env: Mapping[str, str], prefix: str) -> dict[str, str]:
    # Settings may be written X__serviceUri or X:serviceUri; names compare case-insensitively.
    found: dict[str, str] = {}
    for name, value in env.items():
        for separator in ("__", ":"):
            head = prefix + separator
            if name.lower().startswith(head.lower()) and value.strip():
                found[name[len(head) :].lower()] = value.strip()
    return found


def _from_identity(setting: str, values: Mapping[str, str]) -> StorageConnection | None:
    service_uri = values.get("serviceuri")
    blob = values.get("blobserviceuri") or service_uri
    # `serviceUri` is the endpoint of whichever service the binding uses (the host's docs:
    # a queue binding's X__serviceUri is a queue URL), so it stands in for both.
    queue = values.get("queueserviceuri") or service_uri
    account = values.get("accountname")
    if account:
        blob = blob or f"https://{account}.blob.core.windows.net"
        queue = queue or f"https://{account}.queue.core.windows.net"
    if not blob and not queue:
        return None
    return StorageConnection(
        setting=setting,
        blob_url=blob.rstrip("/") if blob else None,
        queue_url=queue.rstrip("/") if queue else None,
        client_id=values.get("clientid"),
    )


def resolve_connection(
    connection: str | None, environ: Mapping[str, str] | None = None
) -> StorageConnection:
    """The storage connection a binding's `connection` property names (see the module doc).

    Raises ConfigError saying which settings were looked for when none is set.
    """
    env = os.environ if environ is None else environ
    name = (connection or "").strip() or DEFAULT_CONNECTION_SETTING
    candidates = [name]
    if not name.lower().startswith("azurewebjobs"):
        candidates.append(f"AzureWebJobs{name}")
    for candidate in candidates:
        text = env.get(candidate, "").strip()
        if text:
            return _from_connection_string(candidate, text)
        identity = _from_identity(candidate, _identity_settings(env, candidate))
        if identity is not None:
            return identity
    looked_for = " or ".join(candidates)
    raise ConfigError(
        f"storage connection '{name}' is not set: set {looked_for} to a connection string "
        f"(UseDevelopmentStorage=true for Azurite) or {name}__serviceUri for an identity"
    )
