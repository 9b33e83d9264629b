"""The I/O-free core: the polling state machine.

`StatusPoller.observe(response, now=..., wall_now=...)` takes an answer that has already been
read and returns one step: `Wait` (sleep `delay` seconds, then GET `url`), `Done` (the
operation succeeded) or `Stop` (raise `error`). It never sleeps, sends or reads a clock: the
sync and async clients do that, so both behave the same and this module is tested alone.
How each status dialect is read is in `opsclient.dialects`.
"""

from __future__ import annotations

import email.utils
import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from opsclient.dialects import interpret_status, outcome_error, redact, resolve_url, response_url
from opsclient.errors import OperationTimeout, OpsClientError
from opsclient.model import OperationStatus

__all__ = [
    "Done",
    "PollStep",
    "PollingPolicy",
    "StatusPoller",
    "Stop",
    "Wait",
    "parse_retry_after",
]

log = logging.getLogger("opsclient")


@dataclass(frozen=True, slots=True)
class PollingPolicy:
    """How long to wait between polls.

    A server's `Retry-After` is obeyed but kept within [`min_interval`, `max_interval`]: the
    floor stops a `Retry-After: 0` from becoming a tight loop, the cap stops a huge value from
    stalling a script. Without `Retry-After` the wait starts at `default_interval` and grows
    by `growth` each poll up to `default_max_interval`, so a server that never finishes is
    polled less and less often.
    """

    min_interval: float = 0.5
    max_interval: float = 30.0
    default_interval: float = 1.0
    growth: float = 1.5
    default_max_interval: float = 10.0

    def clamp(self, seconds: float) -> float:
        """`seconds` kept within the floor and the cap."""
        return max(self.min_interval, min(self.max_interval, seconds))


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep `delay` seconds, then GET `url`."""

    url: str
    delay: float
    status: OperationStatus
    progress_changed: bool


@dataclass(frozen=True, slots=True)
class Done:
    """The operation succeeded; `status` says where its result is."""

    status: OperationStatus
    progress_changed: bool


@dataclass(frozen=True, slots=True)
class Stop:
    """The wait is over without a result: raise `error`."""

    error: OpsClientError
    status: OperationStatus | None
    progress_changed: bool


PollStep = Wait | Done | Stop


class StatusPoller:
    """The polling state machine for one wait.

    `deadline` is on the same monotonic scale as the `now` passed to `observe`; None waits
    for ever.
    """

    def __init__(
        self,
        url: str,
        *,
        policy: PollingPolicy | None = None,
        deadline: float | None = None,
        operation_id: str | None = None,
    ) -> None:
        self.url = url
        # Answers such as a bare 303 do not name the operation; the caller may know its id.
        self.operation_id = operation_id
        self.policy = policy or PollingPolicy()
        self.deadline = deadline
        self.polls = 0
        self.last_status: OperationStatus | None = None
        self._unhinted_polls = 0
        self._last_seen: tuple[Any, ...] | None = None
        self._warned_unknown_word = False

    def remaining(self, now: float) -> float | None:
        """Seconds left before the deadline; None without one."""
        return None if self.deadline is None else self.deadline - now

    def timed_out(self, now: float) -> OperationTimeout | None:
        """The timeout to raise instead of a request error once the deadline has passed.

        A poll that failed (connection, 503s) at or after the deadline ends the wait as a
        timeout, the failure chained as its cause.
        """
        if self.deadline is None or now < self.deadline:
            return None
        return _timeout_error(self.last_status, self.url)

    def first_delay(self, retry_after: float | None, *, now: float) -> float:
        """How long to wait before the first poll: the start answer's `Retry-After`, if any."""
        if retry_after is None:
            return 0.0
        delay = self.policy.clamp(retry_after)
        if self.deadline is not None:
            delay = max(0.0, min(delay, self.deadline - now))
        return delay

    def observe(self, response: httpx.Response, *, now: float, wall_now: datetime) -> PollStep:
        """Decide the next step from the answer to a GET of `self.url`."""
        self.polls += 1
        try:
            status = interpret_status(response, self.url)
        except OpsClientError as error:
            return Stop(error, self.last_status, False)
        if status.id is None and self.operation_id is not None:
            status = replace(status, id=self.operation_id)
        changed = self._note_progress(status)
        self.last_status = status
        if not status.status_recognized:
            self._warn_unknown_word(status)
        if status.state.finished:
            failure = outcome_error(status)
            return Done(status, changed) if failure is None else Stop(failure, status, changed)
        delay = self._delay_for(response, wall_now)
        if status.http_status == 202 and (location := response.headers.get("location")):
            self.url = resolve_url(response_url(response, self.url), location)
        if self.deadline is not None:
            remaining = self.deadline - now
            if remaining <= 0:
                return Stop(_timeout_error(status, self.url), status, changed)
            # One last poll exactly at the deadline rather than giving up early.
            delay = min(delay, remaining)
        return Wait(self.url, delay, status, changed)

    def _warn_unknown_word(self, status: OperationStatus) -> None:
        # Once per wait: a server with its own word for "running" would otherwise log a
        # warning on every poll.
        if self._warned_unknown_word:
            return
        self._warned_unknown_word = True
        log.warning(
            "%s reports status %r, which opsclient does not know; treating the operation as "
            "still running (it is never taken for done)",
            redact(status.url),
            status.reported_status,
        )

    def _delay_for(self, response: httpx.Response, wall_now: datetime) -> float:
        hinted = parse_retry_after(
            response.headers.get("retry-after"),
            now=wall_now,
            server_date=response.headers.get("date"),
        )
        if hinted is not None:
            self._unhinted_polls = 0
            return self.policy.clamp(hinted)
        policy = self.policy
        grown = policy.default_interval * policy.growth**self._unhinted_polls
        self._unhinted_polls += 1
        return policy.clamp(min(grown, policy.default_max_interval))

    def _note_progress(self, status: OperationStatus) -> bool:
        # A status without progress (a bare 303, say) says nothing new: never report that
        # progress "disappeared".
        if status.progress is None and status.custom_status is None:
            return False
        seen = (status.progress, _freeze(status.custom_status))
        changed = seen != self._last_seen
        self._last_seen = seen
        return changed


def _freeze(value: Any) -> Any:
    # custom status may be any JSON; compare it by its canonical text.
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)


def _timeout_error(status: OperationStatus | None, url: str) -> OperationTimeout:
    if status is not None and status.id:
        name = f"operation {status.id}"
    else:
        name = f"the operation at {redact(url)}"
    state = f"still {status.state.value}" if status is not None else "no answer yet"
    return OperationTimeout(
        f"timed out waiting for {name}: {state} (it keeps running on the server unless canceled)",
        status,
    )


def parse_retry_after(
    value: str | None, *, now: datetime, server_date: str | None = None
) -> float | None:
    """Seconds to wait from a `Retry-After` value, or None when absent or unreadable.

    Both forms of RFC 9110 are read: delay-seconds and an HTTP-date. A date is measured
    against the answer's own `Date` header when there is one, so a skewed local clock does
    not distort it; a date in the past means "now" (0).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay
    when = _http_date(text)
    if when is None:
        log.debug("ignoring unreadable Retry-After %r", text)
        return None
    reference = _http_date(server_date) if server_date else None
    return max(0.0, (when - (reference or now)).total_seconds())


def _http_date(text: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
