"""Activity dispatch: run activity work items, a bounded number at once.

Sync activities run in a thread pool (as the Functions Python worker runs them), async
ones on the loop. A result is not stored here: it travels to its instance in memory as
an `ActivityResult`, and the episode that consumes it commits it (as history) together
with the deletion of its work item, one transaction per step. Lost in a crash before
that commit, the work item is still stored and runs again: at least once, and a
committed result is never recomputed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from durablehost.history import EventType, HistoryEvent
from durablehost.invoke import ActivityFailure, invoke_activity
from durablehost.loader import FunctionIndex
from durablehost.store.base import ActivityWork, Message

__all__ = ["ActivityDispatcher", "ActivityResult"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ActivityResult(Message):
    """An activity's TaskCompleted/TaskFailed on its way to its instance, not yet stored;
    `work_id` is the work item the consuming episode deletes."""

    work_id: int = 0


class ActivityDispatcher:
    """Runs queued activity work with `concurrency` workers; each result goes to `deliver`."""

    def __init__(
        self,
        index: FunctionIndex,
        *,
        concurrency: int,
        clock: Callable[[], datetime],
        deliver: Callable[[ActivityResult], None],
    ) -> None:
        self.index = index
        self.concurrency = max(1, concurrency)
        self._clock = clock
        self._deliver = deliver
        self._queue: asyncio.Queue[ActivityWork] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="activity")

    def submit(self, work: ActivityWork) -> None:
        """Queue one work item (already stored)."""
        self._queue.put_nowait(work)

    def workers(self) -> list[asyncio.Task[None]]:
        """Start the worker tasks; the caller cancels them to stop."""
        return [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]

    def shutdown(self) -> None:
        """Drop queued thread work; running sync activities finish on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _worker(self) -> None:
        while True:
            work = await self._queue.get()
            try:
                self._deliver(await self._run(work))
            except Exception:
                log.exception("activity %s of %s crashed its worker", work.name, work.instance_id)

    async def _run(self, work: ActivityWork) -> ActivityResult:
        info = self.index.activities.get(work.name)
        if info is None:
            outcome: str | ActivityFailure = ActivityFailure(
                f"The activity function '{work.name}' doesn't exist in this app."
            )
        else:
            outcome = await invoke_activity(info, work.input, self._pool)
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
                EventType.TASK_COMPLETED,
                done,
                task_scheduled_id=work.task_id,
                result=outcome,
            )
        return ActivityResult(
            work.instance_id, event, execution_id=work.execution_id, work_id=work.work_id
        )
