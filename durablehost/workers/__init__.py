"""The workers layer: activity functions run in worker processes of their own.

`WorkerPool` (`pool`, in the host) spawns `FUNCTIONS_WORKER_PROCESS_COUNT` processes,
each running `worker.serve`: it imports the app once and runs the activity calls it
receives over a pipe (sync ones in threads, async ones on its own event loop), sending
their outcomes back in batches. The pool is an `engine.activities.ActivityRunner` by
shape, so the engine's dispatcher uses it exactly as it uses the in-process
`ThreadRunner`. `settings` reads how many workers to start.

May import durablehost.errors and the app layer only: what travels is an
`app.activity_invocation.ActivityCall` and its `ActivityOutcome`; the engine and the host
compose the pool, the pool knows nothing of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from durablehost.workers.pool import WorkerPool
from durablehost.workers.settings import WORKER_COUNT_SETTING, default_worker_count, worker_count

__all__ = [
    "WORKER_COUNT_SETTING",
    "WorkerPool",
    "activity_pool",
    "default_worker_count",
    "worker_count",
]


def activity_pool(app_dir: Path, workers: int | None, concurrency: int) -> WorkerPool | None:
    """The pool for `workers` processes (None: FUNCTIONS_WORKER_PROCESS_COUNT, else the
    default for this machine), or None to run activities in the host process: for 0, and
    on Windows, whose default event loop cannot watch the pipes."""
    count = worker_count() if workers is None else workers
    if count == 0 or sys.platform == "win32":
        return None
    return WorkerPool(app_dir, count=count, concurrency=concurrency)
