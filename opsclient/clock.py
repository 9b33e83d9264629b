"""Time, as the clients see it: injectable so tests skip waits instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Monotonic time for deadlines, wall time for `Retry-After` dates, and sleeping."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def wall(self) -> datetime:
        """The current UTC time."""
        ...

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        """Block for `seconds`; True if `cancel` was set before they passed."""
        ...

    async def sleep_async(self, seconds: float, cancel: asyncio.Event | None = None) -> bool:
        """Sleep for `seconds` without blocking the loop; True if `cancel` was set."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def wall(self) -> datetime:
        """`datetime.now(UTC)`."""
        return datetime.now(UTC)

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        """Sleep, waking early when `cancel` is set."""
        if cancel is None:
            time.sleep(seconds)
            return False
        return cancel.wait(seconds)

    async def sleep_async(self, seconds: float, cancel: asyncio.Event | None = None) -> bool:
        """Sleep on the loop, waking early when `cancel` is set."""
        if cancel is None:
            await asyncio.sleep(seconds)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(cancel.wait(), seconds)
        return cancel.is_set()
