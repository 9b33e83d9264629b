"""Activity dispatch: run activity work items, a bounded number at once.

`ActivityDispatcher` takes the engine's work items, lets at most `concurrency` run at
once (host.json's maxConcurrentActivityFunctions, sync and async counted together) and
turns each outcome into the TaskCompleted/TaskFailed its instance receives. Where the
functions run is an `ActivityRunner`: `ThreadRunner` here runs them in this process
(sync ones in threads, as the Functions Python worker runs them, async ones as tasks on
the loop); `durablehost.workers.WorkerPool` runs them in worker processes. Both report
outcomes in batches, on the loop.

A result is not stored here: it travels to its instance in memory as an
`ActivityResult`, and the episode that consumes it commits it (as history) together with
the deletion of its work item, one transaction per step. Lost in a crash before that
commit (of the host, or of a worker process: its in-flight activities run again), the
work item is still stored and runs again: at least once, and a committed result is never
recomputed.

Why not `loop.run_in_executor` in `ThreadRunner`: for the short activities most
orchestrations call, its per-call machinery (an asyncio future chained to a concurrent
one, a worker coroutine, one loop wake-up per result) cost more host CPU than the
activity itself (~0.12 ms each, measured on HelloSequence5). Here a thread does the whole
call, decoding and encoding included, and the results that finish while the loop is busy
come back together on one wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from durablehost.app.activity_invocation import (
    ActivityCall,
    ActivityFailure,
    ActivityOutcome,
    call_async_activity,
    call_sync_activity,
    unknown_activity,
)
from durablehost.app.loader import FunctionIndex
from durablehost.model.history import EventType, HistoryEvent
from durablehost.store.base import ActivityWork, Message

__all__ = [
    "ActivityDispatcher",
    "ActivityResult",
    "ActivityRunner",
    "Finished",
    "ThreadRunner",
]

log = logging.getLogger(__name__)

# Outcomes by call key; None for a call that could not finish (a host bug: its work item
# stays stored for the next start).
Finished = Callable[[Sequence[tuple[int, ActivityOutcome | None]]], None]


@dataclass(slots=True)
class ActivityResult(Message):
    """An activity's TaskCompleted/TaskFailed on its way to its instance, not yet stored;
    `work_id` is the work item the consuming episode deletes."""

    work_id: int = 0


class ActivityRunner(Protocol):
    """Where activity functions run. The dispatcher hands it at most its concurrency of
    calls at once, each of an activity the app defines."""

    def start(self, finished: Finished) -> None:
        """Begin running calls (on the running loop); outcomes go to `finished`, on it."""
        ...

    def run(self, call: ActivityCall) -> None:
        """Run one call; its outcome is reported once, unless `stop` comes first."""
        ...

    def stop(self) -> None:
        """Drop every call in flight: nothing is reported after this."""
        ...


class ActivityDispatcher:
    """Runs queued activity work through `runner` (threads of this process by default),
    at most `concurrency` at once; each result goes to `deliver`, on the loop that
    called `start`."""

    def __init__(
        self,
        index: FunctionIndex,
        *,
        concurrency: int,
        clock: Callable[[], datetime],
        deliver: Callable[[ActivityResult], None],
        runner: ActivityRunner | None = None,
    ) -> None:
        self.index = index
        self.concurrency = max(1, concurrency)
        self.runner: ActivityRunner = (
            runner if runner is not None else ThreadRunner(index, concurrency=self.concurrency)
        )
        self._clock = clock
        self._deliver = deliver
        self._waiting: deque[ActivityWork] = deque()
        self._running: dict[int, ActivityWork] = {}
        self._next_key = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Begin running work; results are delivered on the running loop."""
        self._loop = asyncio.get_running_loop()
        self.runner.start(self._finished)
        self._dispatch()

    def stop(self) -> None:
        """Stop running work: what is in flight is dropped (a sync activity still running
        in a thread finishes there, unreported). Waiting work is dropped too: every work
        item stays stored, and the engine submits them all again when it starts."""
        self._loop = None
        self.runner.stop()
        self._waiting.clear()
        self._running.clear()

    def submit(self, work: ActivityWork) -> None:
        """Queue one work item (already stored)."""
        self._waiting.append(work)
        if self._loop is not None:
            self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting and len(self._running) < self.concurrency:
            work = self._waiting.popleft()
            self._next_key += 1
            key = self._next_key
            self._running[key] = work
            if work.name not in self.index.activities:
                assert self._loop is not None
                # Reported on the next pass of the loop, as a runner would: the engine
                # is in the middle of submitting.
                self._loop.call_soon(self._finished, [(key, unknown_activity(work.name))])
                continue
            self.runner.run(ActivityCall(key, work.name, work.input, work.instance_id))

    def _finished(self, outcomes: Sequence[tuple[int, ActivityOutcome | None]]) -> None:
        if self._loop is None:
            return  # stopped meanwhile: the work items stay stored
        for key, outcome in outcomes:
            work = self._running.pop(key, None)
            if work is None or outcome is None:
                continue  # from before a stop, or lost (logged where it happened)
            try:
                self._deliver(self._result(work, outcome))
            except Exception:
                log.exception("delivering the result of activity work %s failed", work.work_id)
        self._dispatch()

    def _result(self, work: ActivityWork, outcome: ActivityOutcome) -> ActivityResult:
        done = self._clock()
        if isinstance(outcome, ActivityFailure):
            log.warning("%s (instance %s)", outcome.reason, work.instance_id)
            event = HistoryEvent(
                EventType.TASK_FAILED,
                done,
                task_scheduled_id=work.task_id,
                reason=outcome.reason,
                details=outcome.details,
            )
        else:
            event = HistoryEvent(
                EventType.TASK_COMPLETED, done, task_scheduled_id=work.task_id, result=outcome
            )
        return ActivityResult(
            work.instance_id, event, execution_id=work.execution_id, work_id=work.work_id
        )


class ThreadRunner:
    """Runs activities in this process: sync ones in `concurrency` threads of their own,
    async ones as tasks on the loop."""

    def __init__(self, index: FunctionIndex, *, concurrency: int) -> None:
        self.index = index
        self.concurrency = max(1, concurrency)
        self._finished: Finished | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Sync calls go to the threads through `_thread_work` (None tells one to exit);
        # outcomes come back through `_outcomes`, guarded by `_lock`, with one loop
        # wake-up scheduled for however many finish before the loop gets to them.
        self._thread_work: queue.SimpleQueue[ActivityCall | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._outcomes: list[tuple[int, ActivityOutcome | None]] = []
        self._lock = threading.Lock()
        self._wake_scheduled = False

    def start(self, finished: Finished) -> None:
        """Begin running calls; outcomes go to `finished` on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._finished = finished

    def run(self, call: ActivityCall) -> None:
        """Run one call: in a thread if sync, as a task on the loop if async."""
        info = self.index.activities[call.name]
        if not info.is_async:
            self._ensure_threads()
            self._thread_work.put(call)
            return
        assert self._loop is not None
        task = self._loop.create_task(self._run_on_loop(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """Cancel async calls; sync ones still running finish unreported."""
        self._loop = None
        self._finished = None
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        for _ in self._threads:
            self._thread_work.put(None)
        self._threads = []
        self._thread_work = queue.SimpleQueue()
        with self._lock:
            self._outcomes.clear()
            self._wake_scheduled = False

    async def _run_on_loop(self, call: ActivityCall) -> None:
        outcome = await call_async_activity(self.index.activities[call.name], call.input_json)
        if self._finished is not None:
            self._finished([(call.key, outcome)])

    def _collect(self) -> None:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            self._wake_scheduled = False
        if self._finished is not None:
            self._finished(outcomes)

    # -- in the threads ----------------------------------------------------------------

    def _ensure_threads(self) -> None:
        if self._threads:
            return
        work = self._thread_work
        for number in range(self.concurrency):
            thread = threading.Thread(
                target=self._thread_main, args=(work,), name=f"activity-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _thread_main(self, work_queue: queue.SimpleQueue[ActivityCall | None]) -> None:
        while (call := work_queue.get()) is not None:
            outcome: ActivityOutcome | None = None
            try:
                outcome = call_sync_activity(self.index.activities[call.name], call.input_json)
            except Exception:  # a host bug: the work item stays stored for the next start
                log.exception("activity %s of %s crashed its thread", call.name, call.instance_id)
            with self._lock:
                loop = self._loop
                if loop is None or work_queue is not self._thread_work:
                    continue  # stopped meanwhile: the outcome is dropped, the work stays
                self._outcomes.append((call.key, outcome))
                wake = not self._wake_scheduled
                self._wake_scheduled = True
            if wake:
                # RuntimeError: the loop closed meanwhile; the work item stays stored.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._collect)
