"""What the host reads before it imports the app: host.json and local.settings.json.

Like `func start`: `local.settings.json` `Values` go into the environment without
overriding variables that are already set, and `%NAME%` references in host.json settings
(a common way to name the task hub) resolve against that environment.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durablehost.errors import ConfigError

__all__ = [
    "DEFAULT_HUB_NAME",
    "DEFAULT_ROUTE_PREFIX",
    "DISABLED_SETTING",
    "HostConfig",
    "LocalSettings",
    "apply_settings",
    "is_disabled",
    "load_host_config",
    "load_local_settings",
    "read_json_document",
    "resolve_app_setting",
]

DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_HUB_NAME = "TestHubName"
# The Durable Functions extension's default for both limits: 10 per processor.
_DEFAULT_CONCURRENCY = 10 * (os.cpu_count() or 1)
# Azure Storage task hub rules (the extension enforces them for the default provider); we
# also rely on them to make the hub name a safe file name.
_HUB_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")
_SETTING_REF_RE = re.compile(r"%([^%]+)%")
# `AzureWebJobs.<function name>.Disabled` = true turns a function off, as in the real host.
DISABLED_SETTING = "AzureWebJobs.{name}.Disabled"


@dataclass(frozen=True, slots=True)
class HostConfig:
    """The parts of host.json durablehost uses."""

    route_prefix: str = DEFAULT_ROUTE_PREFIX
    hub_name: str = DEFAULT_HUB_NAME
    max_concurrent_activities: int = _DEFAULT_CONCURRENCY
    max_concurrent_orchestrations: int = _DEFAULT_CONCURRENCY
    source: Path | None = None
    # The Durable SDK parses ./host.json with json.loads at import, so comments break it.
    has_comments: bool = False
    # host.json `extensions` as written: the triggers layer reads its own sections
    # (`queues`, `blobs`). Raw input, left out of comparisons.
    extensions: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """local.settings.json: app settings and the `Host` section."""

    values: Mapping[str, str] = field(default_factory=dict)
    local_http_port: int | None = None
    cors_origins: tuple[str, ...] = ()  # Host.CORS, split on commas; "*" allows any
    cors_credentials: bool = False  # Host.CORSCredentials
    source: Path | None = None


def _strip_json_comments(text: str) -> str:
    """Drop // and /* */ comments outside strings: the real host accepts them in host.json."""
    out: list[str] = []
    index, length = 0, len(text)
    in_string = False
    while index < length:
        char = text[index]
        if in_string:
            out.append(char)
            if char == "\\" and index + 1 < length:
                out.append(text[index + 1])
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", index):
            newline = text.find("\n", index)
            index = length if newline < 0 else newline
            continue
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            index = length if end < 0 else end + 2
            continue
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_json(path: Path, *, allow_comments: bool, text: str | None = None) -> Any:
    if text is None:
        text = _read_text(path)
    if allow_comments:
        text = _strip_json_comments(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


def read_json_document(path: Path) -> Any:
    """Parse a JSON file the way the Functions host reads its own (host.json,
    function.json): a UTF-8 BOM and comments are accepted; ConfigError names the spot."""
    return _read_json(path, allow_comments=True)


def resolve_app_setting(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace `%NAME%` references with app settings (environment variables)."""
    env = os.environ if environ is None else environ

    def lookup(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in env:
            raise ConfigError(
                f"'%{name}%' refers to an app setting that is not set: add it to "
                "local.settings.json Values or the environment"
            )
        return env[name]

    return _SETTING_REF_RE.sub(lookup, value)


def _section(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key} must be a JSON object")
    return value


def _positive_int(section: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = section.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}.{key} must be a positive integer, not {value!r}")
    return value


def load_host_config(app_dir: Path, environ: Mapping[str, str] | None = None) -> HostConfig:
    """Read `app_dir/host.json` (defaults when it does not exist).

    Call it after `apply_settings`, so `%NAME%` references can see local settings.
    """
    path = app_dir / "host.json"
    if not path.exists():
        return HostConfig()
    text = _read_text(path)
    data = _read_json(path, allow_comments=True, text=text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    version = data.get("version")
    if version is not None and not str(version).startswith("2."):
        raise ConfigError(f'{path}: "version" is {version!r}; only "2.0" host.json is supported')
    extensions = _section(data, "extensions", "host.json")
    http = _section(extensions, "http", "host.json extensions")
    durable = _section(extensions, "durableTask", "host.json extensions")
    where = f"{path.name} extensions.durableTask"

    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
    if prefix is None:
        prefix = DEFAULT_ROUTE_PREFIX
    if not isinstance(prefix, str):
        raise ConfigError(f"{path.name} extensions.http.routePrefix must be a string")
    prefix = prefix.strip().strip("/")

    hub_name = durable.get("hubName", DEFAULT_HUB_NAME)
    if not isinstance(hub_name, str):
        raise ConfigError(f"{where}.hubName must be a string")
    hub_name = resolve_app_setting(hub_name, environ).strip()
    if not _HUB_NAME_RE.match(hub_name):
        raise ConfigError(
            f"{where}.hubName {hub_name!r} is not a valid task hub name: use 3 to 45 letters "
            "and digits, starting with a letter"
        )
    return HostConfig(
        route_prefix=prefix,
        hub_name=hub_name,
        max_concurrent_activities=_positive_int(
            durable, "maxConcurrentActivityFunctions", _DEFAULT_CONCURRENCY, where
        ),
        max_concurrent_orchestrations=_positive_int(
            durable, "maxConcurrentOrchestratorFunctions", _DEFAULT_CONCURRENCY, where
        ),
        source=path,
        has_comments=_strip_json_comments(text) != text,
        extensions=extensions,
    )


def _setting_text(name: str, value: Any, path: Path) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ConfigError(f"{path.name} Values.{name} must be a string, not a JSON {type(value)}")


def load_local_settings(app_dir: Path) -> LocalSettings:
    """Read `app_dir/local.settings.json` (empty settings when it does not exist)."""
    path = app_dir / "local.settings.json"
    if not path.exists():
        return LocalSettings()
    data = _read_json(path, allow_comments=True)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    if data.get("IsEncrypted") is True:
        raise ConfigError(
            f"{path} is encrypted; decrypt it first (`func settings decrypt`) or set the "
            "values as environment variables"
        )
    raw_values = data.get("Values") or {}
    if not isinstance(raw_values, dict):
        raise ConfigError(f"{path.name} Values must be a JSON object")
    values = {str(k): _setting_text(str(k), v, path) for k, v in raw_values.items()}
    host = data.get("Host") or {}
    port: int | None = None
    if isinstance(host, dict) and host.get("LocalHttpPort") is not None:
        raw_port = host["LocalHttpPort"]
        try:
            port = int(raw_port)
        except (TypeError, ValueError):
            raise ConfigError(f"{path.name} Host.LocalHttpPort must be a port number") from None
    cors = host.get("CORS") if isinstance(host, dict) else None
    if cors is not None and not isinstance(cors, str):
        raise ConfigError(
            f'{path.name} Host.CORS must be a string like "*" or "https://a,https://b"'
        )
    origins = tuple(
        origin.strip().rstrip("/") for origin in (cors or "").split(",") if origin.strip()
    )
    credentials = bool(isinstance(host, dict) and host.get("CORSCredentials") is True)
    return LocalSettings(
        values=values,
        local_http_port=port,
        cors_origins=origins,
        cors_credentials=credentials,
        source=path,
    )


def is_disabled(function_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the app setting `AzureWebJobs.<name>.Disabled` turns this function off."""
    env = os.environ if environ is None else environ
    value = env.get(DISABLED_SETTING.format(name=function_name), "")
    return value.strip().lower() in ("true", "1")


def apply_settings(
    settings: LocalSettings, environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Copy settings into the environment, never overriding a variable already set.

    Returns the names that were added (so an in-process host can take them back out).
    """
    env = os.environ if environ is None else environ
    added = [name for name in settings.values if name not in env]
    for name in added:
        env[name] = settings.values[name]
    return added
