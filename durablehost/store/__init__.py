"""The store layer: task hub storage, the TaskHubStore interface and its implementations.

`base` is the interface (one transaction per state change), `sqlite` the SQLite task hub
(`migrations` its schema), `rows` its records as rows, `writer` the hub writer process.
`open_store` picks the implementation from a location.

May import only durablehost.errors and the layers below it: model and wire.
"""

from __future__ import annotations

from pathlib import Path

from durablehost.errors import ConfigError
from durablehost.store.base import (
    ActivityWork,
    EpisodeCommit,
    InstanceRecord,
    Message,
    TaskHubStore,
)
from durablehost.store.sqlite import SqliteTaskHubStore

__all__ = [
    "ActivityWork",
    "EpisodeCommit",
    "InstanceRecord",
    "Message",
    "SqliteTaskHubStore",
    "TaskHubStore",
    "open_store",
]


def open_store(location: str | Path, *, checkpoints: bool = True) -> SqliteTaskHubStore:
    """Open the task hub at `location`: a file path or a `sqlite:///path` URL.
    `checkpoints=False` when another process (a hub writer) does the hub's writes."""
    text = str(location)
    if text.startswith("sqlite:///"):
        return SqliteTaskHubStore(text.removeprefix("sqlite:///"), checkpoints=checkpoints)
    if "://" in text:
        raise ConfigError(f"unsupported task hub URL {text!r}: use a file path or sqlite:///path")
    return SqliteTaskHubStore(Path(text), checkpoints=checkpoints)
