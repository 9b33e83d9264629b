"""Function keys for `--enforce-keys`, kept in `<app>/.durablehost/keys.json`.

The file is created with fresh random keys on the first start that needs it and can be
edited by hand; its shape mirrors the keys the real host keeps:

    {
      "masterKey": "...",                       # every level, incl. admin and system
      "hostKeys": {"default": "..."},           # every function-level function
      "functionKeys": {"my_func": {"default": "..."}},   # one function only
      "systemKeys": {"durabletask_extension": "..."}      # the extension's webhooks
    }

A caller passes a key as the `code` query parameter or the `x-functions-key` header.

The Durable Functions management API (/runtime/webhooks/durabletask/) is an extension
webhook: the Functions host opens it to the extension's system key (`durabletask_extension`)
or the master key, never to host or function keys, and hands the system key out as
`code=` in the management URLs it gives callers. A file written before system keys
existed gains one on the next start (see `_derived_system_key`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durablehost.errors import ConfigError

__all__ = [
    "DURABLE_EXTENSION_KEY_NAME",
    "FunctionKeys",
    "load_or_create_keys",
    "new_key",
    "presented_key",
]

log = logging.getLogger(__name__)

KEYS_FILE_NAME = "keys.json"
# The system key the Functions host creates for the Durable Task extension's webhook.
DURABLE_EXTENSION_KEY_NAME = "durabletask_extension"


def new_key() -> str:
    """A random key in the style of the Functions host (URL-safe, 40+ characters)."""
    return secrets.token_urlsafe(40)


def presented_key(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The key a request carries: `code` in the query, else the `x-functions-key` header."""
    return query.get("code") or headers.get("x-functions-key")


@dataclass(frozen=True, slots=True)
class FunctionKeys:
    """The keys one host accepts."""

    master_key: str
    host_keys: Mapping[str, str]
    function_keys: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    system_keys: Mapping[str, str] = field(default_factory=dict)
    source: Path | None = None

    def allows(self, presented: str | None, function_name: str, auth_level: str) -> bool:
        """Whether `presented` opens a function of this auth level (anonymous always does)."""
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if not presented:
            return False
        if _same(presented, self.master_key):
            return True
        if level == "admin":
            return False
        # Function names are case-insensitive in the Functions runtime.
        wanted = function_name.lower()
        own = [
            key
            for name, keys in self.function_keys.items()
            if name.lower() == wanted
            for key in keys.values()
        ]
        return _any_same(presented, [*self.host_keys.values(), *own])

    def allows_system(self, presented: str | None, key_name: str) -> bool:
        """Whether `presented` opens the webhook guarded by system key `key_name` (the
        master key opens every one, as in the Functions host)."""
        if not presented:
            return False
        system_key = self.system_keys.get(key_name)
        candidates = [self.master_key] + ([system_key] if system_key else [])
        return _any_same(presented, candidates)

    @property
    def durable_extension_key(self) -> str:
        """The `durabletask_extension` system key (handed out as `code=` in management URLs)."""
        return self.system_keys[DURABLE_EXTENSION_KEY_NAME]

    @property
    def default_key(self) -> str:
        """The host key to show at start (`default`, else any)."""
        return self.host_keys.get("default") or next(iter(self.host_keys.values()))


def _same(a: str, b: str) -> bool:
    # surrogatepass: a header byte that is not UTF-8 arrives as a lone surrogate.
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode())


def _any_same(presented: str, candidates: list[str]) -> bool:
    # Compare with every candidate so the timing does not reveal which one matched.
    return any([_same(presented, key) for key in candidates])


def _derived_system_key(master_key: str, name: str) -> str:
    """A system key for a keys file that has none, derived from its master key.

    Derived rather than random: two hosts upgrading the same file at once write the same
    value, and a host that cannot write the file back still gets the same key on every
    start, so URLs it handed out keep working.
    """
    digest = hmac.new(master_key.encode(), name.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError(f"{where} must map names to non-empty key strings")
    return dict(value)


def _write_new(path: Path) -> None:
    master = new_key()
    data = {
        "masterKey": master,
        "hostKeys": {"default": new_key()},
        "functionKeys": {},
        "systemKeys": {DURABLE_EXTENSION_KEY_NAME: new_key()},
    }
    # O_EXCL: two hosts starting at once must not overwrite each other's keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def _write_back(path: Path, data: dict[str, Any]) -> None:
    """Replace the keys file atomically (a reader never sees half a file), mode 0600."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except OSError as exc:
        # The derived key is the same on every start, so going on without the file is safe.
        log.warning("could not add systemKeys to %s (%s); using the derived key", path, exc)


def load_or_create_keys(state_dir: Path) -> FunctionKeys:
    """Read `state_dir/keys.json`, creating it (mode 0600) with new keys when missing.

    A file without `systemKeys.durabletask_extension` gains one (written back).
    """
    path = state_dir / KEYS_FILE_NAME
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        _write_new(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read keys from {path}: {exc}; delete it to get new keys"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("masterKey"), str):
        raise ConfigError(f"{path} needs a string masterKey; delete it to get new keys")
    master_key = str(data["masterKey"])
    host_keys = _string_map(data.get("hostKeys") or {"default": master_key}, "hostKeys")
    raw_function_keys = data.get("functionKeys") or {}
    if not isinstance(raw_function_keys, dict):
        raise ConfigError(f"{path}: functionKeys must be a JSON object")
    function_keys = {
        name: _string_map(keys, f"functionKeys.{name}") for name, keys in raw_function_keys.items()
    }
    system_keys = _string_map(data.get("systemKeys") or {}, "systemKeys")
    if DURABLE_EXTENSION_KEY_NAME not in system_keys:
        system_keys[DURABLE_EXTENSION_KEY_NAME] = _derived_system_key(
            master_key, DURABLE_EXTENSION_KEY_NAME
        )
        _write_back(path, {**data, "systemKeys": system_keys})
    return FunctionKeys(
        master_key=master_key,
        host_keys=host_keys,
        function_keys=function_keys,
        system_keys=system_keys,
        source=path,
    )
