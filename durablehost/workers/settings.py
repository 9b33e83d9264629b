"""How many worker processes run activities: `FUNCTIONS_WORKER_PROCESS_COUNT`.

The Functions host's own setting name (an app setting, so also read from
local.settings.json's Values, which the host copies into the environment before this is
read). Azure accepts 1-10; here 0 means no worker process at all: activities run in the
host process, as `--workers 0` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from durablehost.errors import ConfigError

__all__ = ["MAX_WORKERS", "WORKER_COUNT_SETTING", "default_worker_count", "worker_count"]

log = logging.getLogger(__name__)

WORKER_COUNT_SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
# Azure's own upper bound for the setting.
MAX_WORKERS = 10


def default_worker_count(cpu_count: int | None = None) -> int:
    """Half the cores, at least 1 and at most 4: the host process (HTTP, engine) and its
    hub writer need the rest. On 2 cores: 1 worker."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, min(4, cores // 2))


def worker_count(environ: Mapping[str, str] | None = None) -> int:
    """The setting's value (0-10), else `default_worker_count()`; raises ConfigError
    for a value that is not a whole number in range."""
    text = (environ if environ is not None else os.environ).get(WORKER_COUNT_SETTING, "").strip()
    if not text:
        return default_worker_count()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_WORKERS:
        raise ConfigError(
            f"{WORKER_COUNT_SETTING} is {text!r}: give a whole number from 0 (activities in "
            f"the host process) to {MAX_WORKERS}"
        )
    return int(text)
