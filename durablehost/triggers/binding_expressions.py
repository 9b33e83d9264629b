"""Binding expressions and blob path patterns, read as the Functions host reads them.

- `%NAME%` is an app setting, resolved once at start.
- `{name}` is a value of the trigger (binding data): a blob trigger's path parts, a queue
  message's JSON properties (`{orderId}`, `{customer.id}`) and metadata (`{Id}`,
  `{DequeueCount}`, `{QueueTrigger}`). Names compare case-insensitively, as in the host.
- `{rand-guid}` / `{sys.randguid}` a new GUID, `{DateTime}` / `{sys.utcnow}` the current
  UTC time (`{DateTime}` as the host formats it, `yyyy-MM-ddTHH-mm-ssZ`).

A blob trigger path `container/pattern` matches blob names: `samples/{name}` matches every
blob in `samples` with `name` the whole blob name, `in/{name}.{ext}` splits at the last
dot, and literal text must match exactly. Expressions are not allowed in the container.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durablehost.app.config import resolve_app_setting
from durablehost.app.invocation import BindingError
from durablehost.errors import ConfigError

__all__ = ["BlobPathPattern", "resolve_template", "split_blob_path"]

_EXPRESSION_RE = re.compile(r"\{([^{}]*)\}")
_PARAMETER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _system_value(name: str) -> str | None:
    lowered = name.lower()
    if lowered in ("rand-guid", "sys.randguid"):
        return str(uuid.uuid4())
    if lowered == "datetime":
        return datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    if lowered == "sys.utcnow":
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return None


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        found = next((v for k, v in value.items() if str(k).lower() == part.lower()), None)
        if found is None:
            return None
        value = found
    return value


def resolve_template(template: str, binding_data: Mapping[str, Any], *, what: str) -> str:
    """`template` with every `%SETTING%` and `{expression}` replaced.

    Raises BindingError naming `what` (e.g. "blob output 'outblob'") when an expression
    has no value in `binding_data`.
    """
    try:
        text = resolve_app_setting(template)
    except ConfigError as exc:
        raise BindingError(f"{what}: {exc}") from None

    def replace(found: re.Match[str]) -> str:
        name = found.group(1).strip()
        system = _system_value(name)
        if system is not None:
            return system
        value = _lookup(binding_data, name)
        if value is None:
            known = ", ".join(sorted(str(key) for key in binding_data)) or "none"
            raise BindingError(
                f"{what}: the binding expression '{{{name}}}' in {template!r} has no value "
                f"(this trigger provides: {known})"
            )
        return value if isinstance(value, str) else str(value)

    return _EXPRESSION_RE.sub(replace, text)


def split_blob_path(path: str, *, what: str) -> tuple[str, str]:
    """'container/blob/name' -> ('container', 'blob/name'); BindingError when not so."""
    container, sep, blob = path.strip("/").partition("/")
    if not sep or not container or not blob:
        raise BindingError(f"{what}: blob path {path!r} must be 'container/blob name'")
    return container, blob


@dataclass(frozen=True, slots=True)
class BlobPathPattern:
    """A blob trigger's `path`: its container and a pattern over blob names."""

    text: str  # `container/pattern`, app settings resolved
    container: str
    prefix: str  # the literal start of the pattern: what listing can filter on
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, path: str) -> BlobPathPattern:
        """Parse `container/pattern` (after %SETTING% resolution); ConfigError if unusable."""
        resolved = resolve_app_setting(path.strip().strip("/"))
        container, sep, pattern = resolved.partition("/")
        if not container or "{" in container or "}" in container:
            raise ConfigError(
                f"blob trigger path {path!r} must start with a container name without "
                "expressions, e.g. 'samples-workitems/{name}'"
            )
        if not sep or not pattern:
            pattern = "{name}"  # a bare container triggers on every blob in it
        parts: list[str] = []
        position = 0
        for found in _EXPRESSION_RE.finditer(pattern):
            parts.append(re.escape(pattern[position : found.start()]))
            name = found.group(1).strip()
            if not _PARAMETER_RE.match(name):
                raise ConfigError(f"blob trigger path {path!r}: '{{{name}}}' is not a name")
            group = name.replace("-", "_")
            # The first greedy, the rest not: `{name}.{ext}` splits at the last dot.
            parts.append(f"(?P<{group}>.+?)" if position else f"(?P<{group}>.+)")
            position = found.end()
        parts.append(re.escape(pattern[position:]))
        first = pattern.find("{")
        prefix = pattern if first < 0 else pattern[:first]
        try:
            regex = re.compile("^" + "".join(parts) + "$", re.DOTALL)
        except re.error as exc:
            raise ConfigError(f"blob trigger path {path!r}: {exc}") from None
        return cls(text=f"{container}/{pattern}", container=container, prefix=prefix, regex=regex)

    def match(self, blob_name: str) -> dict[str, str] | None:
        """The pattern's values for this blob name, or None when it does not match."""
        found = self.regex.match(blob_name)
        return None if found is None else dict(found.groupdict())
