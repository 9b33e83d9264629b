"""Timer triggers: NCRONTAB (or TimeSpan) schedules, `run_on_startup`, `use_monitor`.

Schedules are read like the Functions host reads them: six NCRONTAB fields
`{second} {minute} {hour} {day} {month} {day-of-week}` (five-field cron is accepted and
means second 0), a TimeSpan `hh:mm:ss` / `d.hh:mm:ss` interval, or a `%SETTING%` app
setting holding either. Day-of-month and day-of-week must both match, as in NCrontab.
Times are UTC unless WEBSITE_TIME_ZONE (or TZ) names an IANA time zone.

With monitoring on (the default, turned off for schedules firing more often than once a
minute), each timer's schedule status is kept in a JSON file beside the task hub; an
occurrence missed while the host was down runs at the next start with `past_due=True`.
Invocations of one timer never overlap: the next occurrence is computed after the previous
invocation finishes, and occurrences that passed meanwhile are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import azure.functions as func
from azure.functions.timer import TimerRequest
from croniter import croniter

from durablehost.app.config import resolve_app_setting
from durablehost.app.invocation import FunctionInvoker, InvocationPlan, plan_invocation
from durablehost.app.loader import FunctionInfo
from durablehost.errors import AppLoadError, ConfigError
from durablehost.triggers.trigger_tasks import TriggerTasks

__all__ = ["TimerSchedule", "TimerService", "parse_schedule", "schedule_time_zone"]

log = logging.getLogger(__name__)

_TIMESPAN_RE = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})$")
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def schedule_time_zone() -> tzinfo:
    """The zone NCRONTAB schedules are read in: WEBSITE_TIME_ZONE or TZ if IANA, else UTC."""
    for variable in ("WEBSITE_TIME_ZONE", "TZ"):
        name = os.environ.get(variable, "").strip()
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("%s=%r is not an IANA time zone; schedules use UTC", variable, name)
    return UTC


@dataclass(frozen=True, slots=True)
class TimerSchedule:
    """A parsed schedule: an NCRONTAB expression or a fixed interval."""

    text: str
    cron: str | None = None
    interval: timedelta | None = None
    zone: tzinfo = UTC

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (aware, UTC)."""
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        local = moment.astimezone(self.zone)
        found = croniter(self.cron, local, second_at_beginning=True, day_or=False).get_next(
            datetime
        )
        return found.astimezone(UTC)

    @property
    def is_frequent(self) -> bool:
        """Fires more often than once a minute (the real host disables monitoring then)."""
        start = datetime(2026, 1, 1, tzinfo=UTC)
        first = self.next_after(start)
        return self.next_after(first) - first < timedelta(minutes=1)


def parse_schedule(text: str, zone: tzinfo | None = None) -> TimerSchedule:
    """Parse a timer schedule; raises ConfigError with a fix-it message when it is bad."""
    resolved = resolve_app_setting(text.strip())
    timespan = _TIMESPAN_RE.match(resolved)
    if timespan:
        days, hours, minutes, seconds = (int(part or 0) for part in timespan.groups())
        interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= timedelta(0):
            raise ConfigError(f"timer schedule {text!r} is a zero interval")
        return TimerSchedule(text=text, interval=interval)
    fields = resolved.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6 or not croniter.is_valid(" ".join(fields), second_at_beginning=True):
        raise ConfigError(
            f"timer schedule {text!r} is not a valid NCRONTAB expression: use six fields "
            "'{second} {minute} {hour} {day} {month} {day-of-week}', e.g. '0 */5 * * * *'"
        )
    return TimerSchedule(text=text, cron=" ".join(fields), zone=zone or schedule_time_zone())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(slots=True)
class _Timer:
    info: FunctionInfo
    plan: InvocationPlan
    schedule: TimerSchedule
    run_on_startup: bool
    use_monitor: bool


class TimerService:
    """Runs every timer-triggered function of the app on its schedule."""

    def __init__(
        self,
        functions: Sequence[FunctionInfo],
        invoker: FunctionInvoker,
        *,
        origin: Callable[[], str],
        status_file: Path | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self._invoker = invoker
        self._origin = origin
        self._status_file = status_file
        self._clock = clock
        self._tasks = TriggerTasks()
        self._status: dict[str, dict[str, str]] = {}
        self.timers = [self._describe(info) for info in functions]

    @staticmethod
    def _describe(info: FunctionInfo) -> _Timer:
        trigger = info.trigger
        try:
            schedule = parse_schedule(str(getattr(trigger, "schedule", "")))
        except ConfigError as exc:
            raise AppLoadError(f"timer function {info.function_name}: {exc}") from None
        use_monitor = getattr(trigger, "use_monitor", None)
        return _Timer(
            info=info,
            plan=plan_invocation(info),
            schedule=schedule,
            run_on_startup=bool(getattr(trigger, "run_on_startup", False)),
            use_monitor=(use_monitor is not False) and not schedule.is_frequent,
        )

    def _load_status(self) -> None:
        if self._status_file is None or not self._status_file.exists():
            return
        try:
            data = json.loads(self._status_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable timer status %s: %s", self._status_file, exc)
            return
        if isinstance(data, dict):
            self._status = {k: v for k, v in data.items() if isinstance(v, dict)}

    def _save_status(self) -> None:
        if self._status_file is None:
            return
        temporary = self._status_file.with_name(self._status_file.name + ".tmp")
        try:
            temporary.write_text(json.dumps(self._status, indent=2), encoding="utf-8")
            os.replace(temporary, self._status_file)
        except OSError as exc:
            log.warning("cannot save timer status to %s: %s", self._status_file, exc)

    async def start(self) -> None:
        """Start one loop per timer function."""
        self._load_status()
        for timer in self.timers:
            self._tasks.start(f"timer:{timer.info.function_name}", self._run(timer))

    async def stop(self) -> None:
        """Cancel every timer loop (an invocation in progress is cancelled too)."""
        await self._tasks.stop()

    async def _run(self, timer: _Timer) -> None:
        name = timer.info.function_name
        status = self._status.get(name, {}) if timer.use_monitor else {}
        missed = _parse_iso(status.get("Next"))
        if timer.run_on_startup:
            await self._invoke(timer, past_due=False)
        elif missed is not None and missed <= self._clock():
            log.info("timer %s missed its occurrence at %s; running it now", name, _iso(missed))
            await self._invoke(timer, past_due=True)
        while True:
            now = self._clock()
            due = timer.schedule.next_after(now)
            self._record(timer, next_due=due)
            await self._sleep_until(due)
            await self._invoke(timer, past_due=False, scheduled=due)

    async def _sleep_until(self, due: datetime) -> None:
        # Waking at least once a minute keeps a long wait honest across clock changes.
        while (remaining := (due - self._clock()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(remaining, 60.0))

    def _record(self, timer: _Timer, *, next_due: datetime) -> None:
        if not timer.use_monitor:
            return
        status = self._status.setdefault(timer.info.function_name, {})
        status["Next"] = _iso(next_due)
        status["LastUpdated"] = _iso(self._clock())
        self._save_status()

    def _timer_request(self, timer: _Timer, past_due: bool) -> func.TimerRequest:
        status = self._status.get(timer.info.function_name, {})
        return TimerRequest(
            past_due=past_due,
            schedule_status=dict(status) if timer.use_monitor else {},
            schedule={"AdjustForDST": True},
        )

    async def _invoke(
        self, timer: _Timer, *, past_due: bool, scheduled: datetime | None = None
    ) -> None:
        name = timer.info.function_name
        started = self._clock()
        # Late by more than a few seconds (a blocked loop, a long previous run): past due.
        if scheduled is not None and started - scheduled > timedelta(seconds=5):
            past_due = True
        try:
            await self._invoker.invoke(
                timer.plan, self._timer_request(timer, past_due), origin=self._origin()
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Executed 'Functions.%s' (Failed, timer)", name)
        else:
            log.info("Executed 'Functions.%s' (Succeeded, timer, past_due=%s)", name, past_due)
        if timer.use_monitor:
            status = self._status.setdefault(name, {})
            status["Last"] = _iso(started)
            status["LastUpdated"] = _iso(self._clock())
            self._save_status()
