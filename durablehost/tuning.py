"""How `python -m durablehost start` sets up its own interpreter for a busy host.

In-process hosts (durablehost.testing) leave the interpreter alone; bench.instructions
applies the same settings to measure what the CLI host runs.
"""

from __future__ import annotations

import enum
import gc
import sys

__all__ = ["drop_enum_getattr", "tune_host_process"]

# Seconds between GIL hand-offs. Sync functions run in worker threads and share the GIL
# with the event loop: at the default 5 ms one CPU-bound activity pushed HTTP p99 to
# ~36 ms; at 1 ms it is ~11 ms (docs/performance.md), with no cost to an I/O-bound host.
_SWITCH_INTERVAL = 0.001
# Cyclic garbage collection: the SDK allocates many small objects per episode, so at
# CPython's default (700, 10, 10) a collection ran every ~5 orchestrations and the
# collector took ~5% of the host's time in HelloSequence5, with full collections of
# 30-40 ms (latency spikes); at these thresholds it takes ~1-2%. Reference counting
# still frees almost everything at once; only cycles wait longer.
_GC_THRESHOLDS = (20_000, 20, 50)


def tune_host_process() -> None:
    """The switch interval, GC thresholds and enum fix of the host process (the caller
    freezes what is loaded once the app has started: gc.freeze())."""
    sys.setswitchinterval(_SWITCH_INTERVAL)
    gc.set_threshold(*_GC_THRESHOLDS)
    drop_enum_getattr()


def drop_enum_getattr() -> bool:
    """On CPython 3.11, remove `enum.EnumType.__getattr__`, as CPython 3.12 did
    (python/cpython#106762); True if it was removed.

    Since 3.11 every member is in its class's `__dict__` (or behind an `enum.property`
    that finds it), so the hook only runs for names that are missing anyway, and raises
    AttributeError for them as the default lookup does (with a shorter message). But its
    mere presence sends every attribute read on an enum class (`EventType.TASK_COMPLETED`
    in the host, `ActionType.CALL_ACTIVITY` in the SDK) through the slow
    `__getattr__`-aware path: ~80 ns instead of ~20 ns. Removing it cut the host's
    instructions per HelloSequence5 orchestration by 3.1% (docs/performance.md).
    Apps see 3.12's behaviour: the same members and errors, only
    `SomeEnum.__getattr__` itself is gone.
    """
    if sys.version_info[:2] != (3, 11) or "__getattr__" not in vars(enum.EnumType):
        return False
    delattr(enum.EnumType, "__getattr__")
    return True
