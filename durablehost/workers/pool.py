"""The host's side of the worker processes: spawn them, send calls, read outcomes.

`WorkerPool` is an `ActivityRunner` (durablehost.engine.activities): the engine's
dispatcher keeps the concurrency limit and hands it calls; the pool sends each to the
ready worker with the fewest calls in flight. Calls handed over during one pass of the
event loop go to a worker in one message, and each worker sends back whatever finished
meanwhile in one message, so a short activity costs the host a tuple pickled and
unpickled rather than a system call each way.

A worker that dies (a crash, an OOM kill, SIGKILL) is replaced, and the calls it had in
flight run again on another worker (or on its replacement): activities run at least
once, as after a crash of the host. Their results were never delivered, so nothing
committed runs again. A call in flight in `_MAX_WORKER_DEATHS` workers that died is
failed instead, so an activity that kills its process (os._exit, a segfault in an
extension) fails its orchestration's task instead of killing workers for ever.

Processes are started with `spawn`, never `fork`: the host has threads (SQLite's
checkpointer, the sync function pool) and an event loop, which a forked child would
inherit in whatever state they were in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from durablehost.app.activity_invocation import ActivityCall, ActivityFailure, ActivityOutcome
from durablehost.workers.worker import WireCall, decode_outcome, serve

__all__ = ["WorkerPool"]

log = logging.getLogger(__name__)

# Where outcomes go (the engine's dispatcher), by call key.
Finished = Callable[[Sequence[tuple[int, ActivityOutcome | None]]], None]

# Deaths of the worker running a call before the call is failed instead of run again.
_MAX_WORKER_DEATHS = 3
# A worker that dies sooner than this after its start is restarted after a growing delay
# (it may be failing to import the app); later deaths are replaced at once.
_HEALTHY_SECONDS = 10.0
_RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# How long a stop waits for the workers to leave before it kills them.
_STOP_SECONDS = 3.0


class _Worker:
    """One worker process and the calls it has in flight."""

    def __init__(self, worker_id: int, process: BaseProcess, conn: Any) -> None:
        self.worker_id = worker_id
        self.process = process
        self.conn: multiprocessing.connection.Connection = conn
        self.started = time.monotonic()
        self.pid: int | None = process.pid
        self.ready = False
        self.in_flight: dict[int, ActivityCall] = {}
        self.outbox: list[WireCall] = []

    @property
    def load(self) -> int:
        return len(self.in_flight)


class WorkerPool:
    """Runs activity calls in `count` worker processes, each importing the app in
    `app_dir` and running up to `concurrency` calls at once. Use from one event loop."""

    def __init__(
        self, app_dir: Path, *, count: int, concurrency: int, log_level: int | None = None
    ) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.app_dir = Path(app_dir).resolve()
        self.count = count
        self.concurrency = max(1, concurrency)
        self._log_level = (
            log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        )
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._pending: list[ActivityCall] = []  # waiting for a ready worker
        self._deaths: Counter[int] = Counter()  # worker deaths per call key
        self._quick_deaths: Counter[int] = Counter()  # per worker id, for the delay
        self._restarts: dict[int, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: Finished | None = None
        self._flush_scheduled = False

    # -- ActivityRunner ----------------------------------------------------------------

    def start(self, finished: Finished) -> None:
        """Spawn the workers; outcomes go to `finished` on the running loop. Calls made
        before a worker is ready wait for one."""
        self._loop = asyncio.get_running_loop()
        self._finished = finished
        for worker_id in range(1, self.count + 1):
            self._spawn(worker_id)

    def run(self, call: ActivityCall) -> None:
        """Send one call to the least busy ready worker (with the next flush)."""
        ready = [worker for worker in self._workers.values() if worker.ready]
        if not ready:
            self._pending.append(call)
            return
        worker = min(ready, key=lambda w: w.load)
        worker.in_flight[call.key] = call
        worker.outbox.append((call.key, call.name, call.input_json, call.instance_id))
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def stop(self) -> None:
        """End every worker (their calls in flight are dropped; the work stays stored)."""
        self._loop, loop = None, self._loop
        self._finished = None
        for handle in self._restarts.values():
            handle.cancel()
        self._restarts.clear()
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            self._detach(worker, loop)
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        deadline = time.monotonic() + _STOP_SECONDS
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)
            worker.conn.close()
        self._pending.clear()
        self._deaths.clear()

    # -- what tests and logs read ------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """The process ids of the workers that are ready."""
        return [w.pid for w in self._workers.values() if w.ready and w.pid is not None]

    # -- processes ---------------------------------------------------------------------

    def _spawn(self, worker_id: int) -> None:
        self._restarts.pop(worker_id, None)
        if self._loop is None:
            return  # stopped meanwhile
        conn, child = self._context.Pipe()
        process = self._context.Process(
            target=serve,
            args=(child,),
            kwargs={
                "worker_id": worker_id,
                "app_dir": str(self.app_dir),
                "concurrency": self.concurrency,
                "log_level": self._log_level,
                "host_pid": os.getpid(),
            },
            name=f"durablehost-worker-{worker_id}",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(worker_id, process, conn)
        self._workers[worker_id] = worker
        self._loop.add_reader(conn.fileno(), self._on_readable, worker)

    def _detach(self, worker: _Worker, loop: asyncio.AbstractEventLoop | None) -> None:
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(ValueError, OSError):  # a closed pipe
                loop.remove_reader(worker.conn.fileno())

    def _on_readable(self, worker: _Worker) -> None:
        outcomes: list[tuple[int, ActivityOutcome | None]] = []
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if isinstance(message, list):
                    for key, wire in message:
                        if worker.in_flight.pop(key, None) is not None:
                            self._deaths.pop(key, None)
                            outcomes.append((key, decode_outcome(wire)))
                elif message[0] == "ready":
                    self._on_ready(worker, int(message[1]))
                else:  # ("failed", why): it logged why and exits; restarted below
                    log.error("worker %d cannot run activities: %s", worker.worker_id, message[1])
        except (EOFError, OSError):
            self._on_death(worker)
        if outcomes and self._finished is not None:
            self._finished(outcomes)

    def _on_ready(self, worker: _Worker, pid: int) -> None:
        worker.ready = True
        worker.pid = pid
        log.info("worker %d (pid %d) is ready", worker.worker_id, pid)
        pending, self._pending = self._pending, []
        for call in pending:
            self.run(call)

    def _on_death(self, worker: _Worker) -> None:
        self._detach(worker, self._loop)
        worker.conn.close()
        worker.process.join(1.0)
        if self._workers.get(worker.worker_id) is worker:
            del self._workers[worker.worker_id]
        if self._loop is None:
            return  # stopping
        lost = list(worker.in_flight.values())
        log.warning(
            "worker %d (pid %s) exited with code %s%s",
            worker.worker_id,
            worker.pid,
            worker.process.exitcode,
            f"; running its {len(lost)} activities again" if lost else "",
        )
        failed: list[tuple[int, ActivityOutcome | None]] = []
        for call in lost:
            self._deaths[call.key] += 1
            if self._deaths[call.key] >= _MAX_WORKER_DEATHS:
                del self._deaths[call.key]
                failed.append((call.key, _killed_its_workers(call, worker.process.exitcode)))
            else:
                self.run(call)
        self._restart(worker)
        if failed and self._finished is not None:
            self._finished(failed)

    def _restart(self, worker: _Worker) -> None:
        assert self._loop is not None
        if worker.ready and time.monotonic() - worker.started >= _HEALTHY_SECONDS:
            self._quick_deaths.pop(worker.worker_id, None)
            self._spawn(worker.worker_id)
            return
        deaths = self._quick_deaths[worker.worker_id]
        self._quick_deaths[worker.worker_id] += 1
        delay = _RESTART_DELAYS[min(deaths - 1, len(_RESTART_DELAYS) - 1)] if deaths else 0.0
        self._restarts[worker.worker_id] = self._loop.call_later(
            delay, self._spawn, worker.worker_id
        )

    def _flush(self) -> None:
        self._flush_scheduled = False
        for worker in list(self._workers.values()):
            if not worker.outbox:
                continue
            batch, worker.outbox = worker.outbox, []
            try:
                worker.conn.send(batch)
            except OSError:
                self._on_death(worker)  # its calls run again elsewhere


def _killed_its_workers(call: ActivityCall, exitcode: int | None) -> ActivityFailure:
    return ActivityFailure(
        f"Activity function '{call.name}' failed: the worker process running it exited "
        f"{_MAX_WORKER_DEATHS} times (last exit code {exitcode}); it was not run again"
    )
