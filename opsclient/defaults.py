"""The defaults a client starts with, in one place so the docs and the CLI quote them."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_RESULT_GRACE",
    "DEFAULT_WAIT_TIMEOUT",
    "RESULT_CACHE_ENTRIES",
    "RESULT_CACHE_MAX_BYTES",
]

DEFAULT_WAIT_TIMEOUT: Final = 3600.0
"""Seconds `wait`/`run`/`follow` wait in total unless told otherwise (None = no bound).

An hour covers the long-running operations this client is for while keeping a forgotten
server (or a status that never changes) from hanging a script for ever. The operation keeps
running after an OperationTimeout; wait again to resume, or pass `timeout=None`.
"""

DEFAULT_RESULT_GRACE: Final = 30.0
"""Seconds a result URL may answer 404 after the operation succeeded (eventual consistency:
the status says Succeeded before the resource is readable everywhere)."""

RESULT_CACHE_ENTRIES: Final = 64
"""Results kept per client for revalidation with If-None-Match."""

RESULT_CACHE_MAX_BYTES: Final = 1024 * 1024
"""Larger results are not kept: a 304 saves little next to holding megabytes per client."""
