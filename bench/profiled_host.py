"""`python -m bench.profiled_host start ...`: `python -m durablehost start` under cProfile.

The profile covers the host's main thread (HTTP front, engine, orchestrator code, the
SDK's client); activities in threads or worker processes are not in it. SIGUSR2 stops
the profiler and writes its stats to $BENCH_PROFILE_OUT, so the bench can take them while
the host still runs and then stop it as usual (a host stuck on a thread may leave with
os._exit, which would skip anything done at exit).

The clock is the main thread's CPU time (time.thread_time) unless $BENCH_PROFILE_CLOCK is
"wall": on a shared 2-core machine a wall clock charges whatever call the process was
preempted in (often a socket send that woke the client) with the time it waited.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import time
from types import FrameType

__all__ = ["PROFILE_CLOCK_SETTING", "PROFILE_OUT_SETTING", "main"]

PROFILE_OUT_SETTING = "BENCH_PROFILE_OUT"
PROFILE_CLOCK_SETTING = "BENCH_PROFILE_CLOCK"


def main() -> None:
    """Run the durablehost CLI with the profiler on until SIGUSR2."""
    out = os.environ[PROFILE_OUT_SETTING]
    wall = os.environ.get(PROFILE_CLOCK_SETTING) == "wall"
    profiler = cProfile.Profile(time.perf_counter if wall else time.thread_time)

    def dump(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out + ".partial")
        os.replace(out + ".partial", out)  # the bench waits for the whole file

    signal.signal(signal.SIGUSR2, dump)
    from durablehost.cli import main as durablehost_main

    sys.argv[0] = "durablehost"
    profiler.enable()
    durablehost_main()


if __name__ == "__main__":
    main()
