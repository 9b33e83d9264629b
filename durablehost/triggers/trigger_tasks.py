"""The background tasks of one trigger service (timer, queue, blob): one long-running
loop per function, started together at host start and cancelled together at stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

__all__ = ["TriggerTasks"]


class TriggerTasks:
    """Loops started by name and stopped all at once."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        """Run `loop` as a task called `name` (shown in task dumps) until `stop`."""
        self._tasks.append(asyncio.create_task(loop, name=name))

    async def stop(self) -> None:
        """Cancel every loop (an invocation in progress is cancelled with it) and wait
        for each to end."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
