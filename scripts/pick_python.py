"""Print the fastest CPython >= 3.11 on this machine that can make a venv (for `make`).

How CPython was built changes how fast durablehost runs by about a fifth: a build
without profile-guided and link-time optimisation, with the interpreter in a shared
library (pyenv's default), ran HelloSequence5 about 20% slower than the distribution's
optimised /usr/bin/python3.11 on the same machine (docs/performance.md). Which builds a
machine has varies, so each candidate runs the same short pure-Python loop and the
fastest wins. The machines this runs on are shared and their speed drifts within
seconds, so the candidates take turns, round after round, and each keeps its best
time; one less than 5% faster than an earlier one does not displace it (the order below
is the tie-break).

Run it with any Python 3; it prints one interpreter path, or nothing and exit status 1
when no candidate can make a venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

_CANDIDATES = ("python3", "python3.11", "python3.12", "python3.13", "/usr/bin/python3")

# Stands for the host's work: attribute access, small dicts and lists, calls.
_PROBE = """
import sys, time
if sys.version_info < (3, 11):
    raise SystemExit(3)
import ensurepip, venv  # a Debian Python without python3-venv has no ensurepip
class Event:
    __slots__ = ("kind", "name", "value")
    def __init__(self, kind, name, value):
        self.kind, self.name, self.value = kind, name, value
def work():
    rows = []
    for i in range(60_000):
        event = Event(i & 7, "step", i)
        row = {"t": event.kind, "n": event.name}
        if event.value is not None:
            row["v"] = event.value
        rows.append(row)
    return len(rows)
best = float("inf")
for _ in range(3):
    began = time.perf_counter()
    work()
    best = min(best, time.perf_counter() - began)
print(sys.executable, best)
"""
_ROUNDS = 5


def _time(path: str) -> tuple[str, float] | None:
    try:
        result = subprocess.run(
            [path, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
        )
        executable, seconds = result.stdout.split()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return executable, float(seconds)


def main() -> int:
    # Each distinct interpreter once (python3 and python3.11 are often the same one);
    # finding them is the first round.
    usable: dict[str, str] = {}  # its sys.executable -> the path to run
    best_times: dict[str, float] = {}
    for command in _CANDIDATES:
        path = shutil.which(command)
        timed = _time(path) if path else None
        if path and timed and os.path.realpath(timed[0]) not in usable:
            real = os.path.realpath(timed[0])
            usable[real], best_times[real] = path, timed[1]
    for _ in range(_ROUNDS - 1):
        for real, path in usable.items():
            timed = _time(path)
            if timed is not None:
                best_times[real] = min(best_times[real], timed[1])
    best: tuple[str, float] | None = None
    for real, path in usable.items():
        if best is None or best_times[real] < best[1] * 0.95:
            best = (path, best_times[real])
    if best is None:
        return 1
    print(best[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
