"""One worker process: import the app, run the activity calls that arrive on the pipe.

The host (`pool.WorkerPool`) sends lists of calls, `(key, name, input JSON, instance id)`;
the worker answers `("ready", pid)` once the app is imported (or `("failed", message)`),
then lists of outcomes, `(key, result JSON)` or `(key, (reason, details))` for a failure.
Tuples, not records: they pickle several times faster, and there is one per activity.

Three kinds of thread, so that neither side of the pipe can block the other: a reader
(blocks in `recv`; hands sync calls to the activity threads and async ones to the event
loop of the main thread), up to `concurrency` activity threads, and a sender that sends
whatever outcomes have piled up in one message. Because the worker always reads, a host
sending a large input never waits on a worker that is itself sending a large result.

The worker ends with its host: at the end of its pipe (a clean stop, or the host gone),
and on Linux also by PR_SET_PDEATHSIG when the host is SIGKILLed. SIGINT and SIGTERM are
ignored: Ctrl+C reaches the whole process group, and a worker must not die before its
host has stopped dispatching to it (its activities would only run again).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
from typing import Any, TextIO

from durablehost.app.activity_invocation import (
    ActivityFailure,
    ActivityOutcome,
    call_async_activity,
    call_sync_activity,
    unknown_activity,
)
from durablehost.app.loader import FunctionIndex, load_app
from durablehost.errors import DurableHostError

__all__ = ["serve"]

log = logging.getLogger(__name__)

# A call as it travels: (key, activity name, input JSON, instance id).
WireCall = tuple[int, str, str | None, str]
# An outcome as it travels: result JSON, or (reason, details).
WireOutcome = str | tuple[str, str]

# Seconds between GIL hand-offs, as in the host (durablehost/tuning.py): the reader and
# the sender get the GIL back soon while activity threads compute.
_SWITCH_INTERVAL = 0.001


def encode_outcome(outcome: ActivityOutcome) -> WireOutcome:
    """An outcome as it travels over the pipe."""
    if isinstance(outcome, ActivityFailure):
        return (outcome.reason, outcome.details)
    return outcome


def decode_outcome(wire: WireOutcome) -> ActivityOutcome:
    """An outcome as `encode_outcome` sent it."""
    if isinstance(wire, tuple):
        return ActivityFailure(wire[0], wire[1])
    return wire


def serve(
    conn: multiprocessing.connection.Connection,
    *,
    worker_id: int,
    app_dir: str,
    concurrency: int,
    log_level: int,
    host_pid: int,
) -> None:
    """The worker process's main function (multiprocessing's target)."""
    _end_with_host(host_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _label_output(worker_id, log_level)
    sys.setswitchinterval(_SWITCH_INTERVAL)
    try:
        index = load_app(app_dir)
    except DurableHostError as error:
        log.error("worker %d could not import the app: %s", worker_id, error)
        with contextlib.suppress(OSError):
            conn.send(("failed", str(error)))
        os._exit(1)
    conn.send(("ready", os.getpid()))
    _Worker(conn, index, concurrency).run()


def _end_with_host(host_pid: int) -> None:
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        # The signal comes when the thread that spawned us ends: the host's loop thread.
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != host_pid:
        os._exit(0)  # the host died before the line above took effect


class _LabelledLines(io.TextIOBase):
    """A text stream that writes each whole line to `target` behind a label."""

    def __init__(self, target: TextIO, label: str) -> None:
        self._target = target
        self._label = label
        self._partial = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            if lines:
                self._target.write("".join(f"{self._label}{line}\n" for line in lines))
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._partial:
                self._target.write(f"{self._label}{self._partial}\n")
                self._partial = ""
            self._target.flush()


def _label_output(worker_id: int, log_level: int) -> None:
    """The worker shares the host's stdout and stderr (the host's log); what the app
    prints or logs there says which worker it came from."""
    label = f"[worker {worker_id}] "
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-5s {label}%(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level)
    if sys.__stdout__ is not None:
        sys.stdout = _LabelledLines(sys.__stdout__, label)
    if sys.__stderr__ is not None:
        sys.stderr = _LabelledLines(sys.__stderr__, label)


class _Worker:
    def __init__(
        self, conn: multiprocessing.connection.Connection, index: FunctionIndex, concurrency: int
    ) -> None:
        self._conn = conn
        self._index = index
        self._concurrency = max(1, concurrency)
        self._sync_calls: queue.SimpleQueue[WireCall] = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue[tuple[int, WireOutcome]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self) -> None:
        threading.Thread(target=self._send_outcomes, name="sender", daemon=True).start()
        threading.Thread(target=self._read_calls, name="reader", daemon=True).start()
        self._loop.run_forever()  # async activities; the reader ends the process

    def _read_calls(self) -> None:
        while True:
            try:
                calls: list[WireCall] | None = self._conn.recv()
            except (EOFError, OSError):
                calls = None  # the host is gone
            if calls is None:
                # Stopped (or orphaned): whatever still runs is dropped, as in the host;
                # the work items stay stored. Threads inside user code cannot be waited on.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            for call in calls:
                info = self._index.activities.get(call[1])
                if info is None:
                    self._outcomes.put((call[0], encode_outcome(unknown_activity(call[1]))))
                elif info.is_async:
                    self._loop.call_soon_threadsafe(self._start_async, call)
                else:
                    self._ensure_threads()
                    self._sync_calls.put(call)

    def _ensure_threads(self) -> None:
        if self._threads:
            return
        for number in range(self._concurrency):
            thread = threading.Thread(
                target=self._run_sync_calls, name=f"activity-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run_sync_calls(self) -> None:
        while True:
            key, name, input_json, instance_id = self._sync_calls.get()
            try:
                outcome = call_sync_activity(self._index.activities[name], input_json)
            except Exception as exc:  # a host bug; the host's pool never sees it otherwise
                log.exception("activity %s of %s crashed its thread", name, instance_id)
                outcome = ActivityFailure(f"Activity function '{name}' failed: {exc!r}")
            self._outcomes.put((key, encode_outcome(outcome)))

    def _start_async(self, call: WireCall) -> None:
        task = self._loop.create_task(self._run_async(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_async(self, call: WireCall) -> None:
        key, name, input_json, _ = call
        outcome = await call_async_activity(self._index.activities[name], input_json)
        self._outcomes.put((key, encode_outcome(outcome)))

    def _send_outcomes(self) -> None:
        while True:
            batch: list[Any] = [self._outcomes.get()]
            # Whatever else finished meanwhile goes in the same message.
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._outcomes.get_nowait())
            try:
                self._conn.send(batch)
            except OSError:
                os._exit(0)  # the host is gone
