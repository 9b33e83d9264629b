"""drop_enum_getattr leaves enums behaving as before (and as on CPython 3.12+): run in a
child interpreter, since it changes the `enum` module for the whole process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Every way of reaching a member by attribute, and the misses, as strings to compare.
_PROBE = r"""
import enum, json, sys
from durablehost.tuning import drop_enum_getattr

removed = drop_enum_getattr() if sys.argv[1] == "drop" else False
again = drop_enum_getattr() if sys.argv[1] == "drop" else False  # nothing left to drop

class Color(enum.Enum):
    RED = 1
    CRIMSON = 1          # an alias
    name = 2             # members named like Enum's own properties
    value = 3

class Status(enum.IntEnum):
    RUNNING = 0
    DONE = 1

class Mode(enum.StrEnum):
    FAST = "fast"

class Perm(enum.Flag):
    R = 4
    W = 2

Dynamic = enum.Enum("Dynamic", "ALPHA BETA")

def miss(owner, attribute):
    try:
        getattr(owner, attribute)
    except AttributeError:
        return "AttributeError"
    return "found"

from durablehost.model.history import EventType
print(json.dumps({
    "removed": removed,
    "again": again,
    "members": [repr(m) for m in (Color.RED, Color.CRIMSON, Color.name, Color.value,
        Status.DONE, Mode.FAST, Perm.R | Perm.W, Dynamic.BETA, EventType.TASK_COMPLETED)],
    "member attributes": [Color.RED.name, Color.RED.value, Color.name.name, Status.DONE.value],
    "misses": [miss(Color, "BLUE"), miss(Color, "__wrapped__"), miss(Status, "_private"),
        miss(Color.RED, "RED")],
    "by value and name": [repr(Color(1)), repr(Status(0)), repr(Color["CRIMSON"])],
    "hasattr": [hasattr(Color, "RED"), hasattr(Color, "BLUE")],
    "members list": [repr(m) for m in Color],
}))
"""


def _probe(mode: str) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(output))


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="only 3.11 has the hook")
def test_enums_behave_the_same_without_the_getattr_hook() -> None:
    before, after = _probe("keep"), _probe("drop")
    assert after.pop("removed") is True
    assert before.pop("removed") is False
    assert after == before  # "again" included: a second call finds nothing to drop
