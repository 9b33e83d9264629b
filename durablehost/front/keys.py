"""Function keys for `--enforce-keys`, kept in `<app>/.durablehost/keys.json`.

The file is created with fresh random keys on the first start that needs it and can be
edited by hand; its shape mirrors the keys the real host keeps:

    {
      "masterKey": "...",                       # every level, incl. admin
      "hostKeys": {"default": "..."},           # every function-level function
      "functionKeys": {"my_func": {"default": "..."}}   # one function only
    }

A caller passes a key as the `code` query parameter or the `x-functions-key` header.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durablehost.errors import ConfigError

__all__ = ["FunctionKeys", "load_or_create_keys", "new_key"]

KEYS_FILE_NAME = "keys.json"


def new_key() -> str:
    """A random key in the style of the Functions host (URL-safe, 40+ characters)."""
    return secrets.token_urlsafe(40)


@dataclass(frozen=True, slots=True)
class FunctionKeys:
    """The keys one host accepts."""

    master_key: str
    host_keys: Mapping[str, str]
    function_keys: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
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
        candidates = [*self.host_keys.values(), *own]
        # Check every candidate so timing does not reveal which key matched.
        return any([_same(presented, key) for key in candidates])

    @property
    def default_key(self) -> str:
        """The host key to show at start (`default`, else any)."""
        return self.host_keys.get("default") or next(iter(self.host_keys.values()))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError(f"{where} must map names to non-empty key strings")
    return dict(value)


def load_or_create_keys(state_dir: Path) -> FunctionKeys:
    """Read `state_dir/keys.json`, creating it (mode 0600) with new keys when missing."""
    path = state_dir / KEYS_FILE_NAME
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        data = {"masterKey": new_key(), "hostKeys": {"default": new_key()}, "functionKeys": {}}
        # O_EXCL: two hosts starting at once must not overwrite each other's keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2)
                handle.write("\n")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot read keys from {path}: {exc}; delete it to get new keys"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("masterKey"), str):
        raise ConfigError(f"{path} needs a string masterKey; delete it to get new keys")
    host_keys = _string_map(data.get("hostKeys") or {"default": data["masterKey"]}, "hostKeys")
    raw_function_keys = data.get("functionKeys") or {}
    if not isinstance(raw_function_keys, dict):
        raise ConfigError(f"{path}: functionKeys must be a JSON object")
    function_keys = {
        name: _string_map(keys, f"functionKeys.{name}") for name, keys in raw_function_keys.items()
    }
    return FunctionKeys(
        master_key=str(data["masterKey"]),
        host_keys=host_keys,
        function_keys=function_keys,
        source=path,
    )
