"""Interpreter fixes the host process applies to itself (`python -m durablehost start`).

Only what CPython itself changed in a later release, applied to the release where the
old behaviour costs the host measurable time.
"""

from __future__ import annotations

import enum
import sys

__all__ = ["drop_enum_getattr"]


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
