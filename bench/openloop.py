"""An open-loop load generator: requests sent at fixed times whatever the answers.

A closed loop (each client waits for its answer before the next request) slows down with
the server and hides queueing. Here request i is due at `t0 + i / rate`; its latency is
counted from that due time, so time spent waiting for a connection or behind a slow
answer shows. The generator's own lateness (`lag`: when the request's task actually ran
minus when it was due) is reported too: if it grows, the client, not the server, was
the bottleneck and the figures say so.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OpenLoopResult", "RequestFailed", "open_loop", "percentile", "summary_ms"]


class RequestFailed(Exception):
    """A request answered something other than what the workload expects; `label` is
    what the error table counts (e.g. "status 503")."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


@dataclass
class OpenLoopResult:
    """Per-request latencies (seconds, from the due time) and the client's own lag."""

    rate: float
    seconds: float
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0

    def figures(self) -> dict[str, Any]:
        """Percentiles in ms, offered and achieved rate, errors, the client's lag."""
        sent = len(self.latencies) + sum(self.errors.values())
        return {
            "offered_per_s": self.rate,
            "seconds": self.seconds,
            "requests": sent,
            "achieved_per_s": len(self.latencies) / self.wall if self.wall else 0.0,
            **summary_ms(self.latencies),
            "errors": dict(self.errors),
            "client_lag": summary_ms(self.lags),
        }


def percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(percent / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max of durations in seconds, as milliseconds."""
    ordered = sorted(values)
    return {
        "p50_ms": percentile(ordered, 50) * 1000,
        "p90_ms": percentile(ordered, 90) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1000,
    }


async def open_loop(
    send: Callable[[], Awaitable[None]], *, rate: float, seconds: float
) -> OpenLoopResult:
    """Call `send` at `rate` per second for `seconds`, each call due at a fixed time and
    not waiting for the ones before. `send` raises RequestFailed for a wrong answer."""
    result = OpenLoopResult(rate=rate, seconds=seconds)
    count = round(rate * seconds)
    # A little head room so the first request is not already late when the loop starts.
    first_due = time.perf_counter() + 0.05

    async def one(due: float) -> None:
        result.lags.append(time.perf_counter() - due)
        try:
            await send()
        except RequestFailed as failure:
            result.errors[failure.label] += 1
            return
        except (TimeoutError, OSError) as error:
            result.errors[type(error).__name__] += 1
            return
        result.latencies.append(time.perf_counter() - due)

    tasks: list[asyncio.Task[None]] = []
    for index in range(count):
        due = first_due + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    result.wall = time.perf_counter() - first_due
    return result
