"""Which failures are retried, and for how long (the policy stamina runs with)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from opsclient.errors import ConnectionFailed, TransientStatusError

__all__ = ["TRANSIENT_STATUSES", "RetryPolicy", "retry_decision"]

TRANSIENT_STATUSES: Final = frozenset({429, 502, 503, 504})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_MIN_RETRY_BUDGET: Final = 1.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried (by stamina).

    Bounded twice: at most `attempts` tries and at most `timeout` seconds per request.
    Backoff is exponential from `wait_initial` up to `wait_max` with up to `wait_jitter`
    seconds of jitter; a `Retry-After` on 429/503 replaces the computed wait, capped at
    `max_retry_after`.
    """

    attempts: int = 5
    timeout: float = 60.0
    wait_initial: float = 0.5
    wait_max: float = 10.0
    wait_jitter: float = 1.0
    max_retry_after: float = 60.0

    def stamina_options(self, budget: float | None = None) -> dict[str, Any]:
        """Keyword arguments for `stamina.RetryingCaller`.

        `budget` (seconds left of a wait) shortens the retry time so retries cannot stretch
        a wait far past its own timeout; it never goes below a second, so the poll at the
        deadline still gets a fair try.
        """
        timeout = self.timeout
        if budget is not None:
            timeout = max(_MIN_RETRY_BUDGET, min(self.timeout, budget))
        return {
            "attempts": self.attempts,
            "timeout": timeout,
            "wait_initial": self.wait_initial,
            "wait_max": self.wait_max,
            "wait_jitter": self.wait_jitter,
        }


def retry_decision(exc: Exception, *, retry_safe: bool, policy: RetryPolicy) -> bool | float:
    """stamina's `on=` hook: retry or not, and how long to wait when the server said so."""
    if not retry_safe:
        return False
    if isinstance(exc, TransientStatusError):
        if exc.status_code in _RETRY_AFTER_STATUSES and exc.retry_after is not None:
            # Floored so `Retry-After: 0` cannot turn the attempts into a burst.
            return max(policy.wait_initial, min(exc.retry_after, policy.max_retry_after))
        return True
    return isinstance(exc, ConnectionFailed)
