"""Timer triggers: NCRONTAB parsing, run_on_startup, monitoring and past_due."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from durablehost.app.invocation import FunctionInvoker
from durablehost.app.loader import load_app
from durablehost.errors import AppLoadError, ConfigError
from durablehost.triggers.timer import TimerService, parse_schedule

APPS = Path(__file__).parent / "apps"
T0 = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("*/5 * * * * *", T0, T0 + timedelta(seconds=5)),
        ("0 */5 * * * *", T0, T0 + timedelta(minutes=5)),
        ("0 30 9 * * MON-FRI", T0, T0.replace(hour=9, minute=30)),
        ("0 0 0 * * SAT", T0, T0 + timedelta(days=2)),
        ("*/10 * * * *", T0, T0 + timedelta(minutes=10)),  # five fields: second 0
        ("00:00:30", T0, T0 + timedelta(seconds=30)),  # TimeSpan interval
        ("1.00:00:00", T0, T0 + timedelta(days=1)),
        # NCrontab needs day-of-month AND day-of-week: the next 13th that is a Friday.
        ("0 0 0 13 * FRI", T0, datetime(2026, 2, 13, tzinfo=UTC)),
    ],
)
def test_next_occurrence(schedule: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(schedule, zone=UTC).next_after(after) == expected


def test_time_zone_applies_to_cron() -> None:
    schedule = parse_schedule("0 0 9 * * *", zone=ZoneInfo("Europe/Paris"))
    assert schedule.next_after(T0) == T0.replace(hour=8)


def test_setting_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SCHEDULE", "0 0 * * * *")
    assert parse_schedule("%MY_SCHEDULE%", zone=UTC).next_after(T0) == T0 + timedelta(hours=1)


@pytest.mark.parametrize("bad", ["", "every minute", "* * * *", "61 * * * * *", "00:00:00"])
def test_bad_schedule(bad: str) -> None:
    with pytest.raises(ConfigError, match="schedule"):
        parse_schedule(bad)


def test_frequency() -> None:
    assert parse_schedule("*/5 * * * * *").is_frequent
    assert not parse_schedule("0 */5 * * * *").is_frequent


def _timer_app() -> Any:
    index = load_app(APPS / "timers")
    return index, sys.modules["function_app"]


async def _service(status_file: Path | None) -> AsyncIterator[tuple[TimerService, Any]]:
    index, module = _timer_app()
    module.CALLS.clear()
    executor = ThreadPoolExecutor(2)
    invoker = FunctionInvoker(executor, function_directory=str(APPS / "timers"))
    service = TimerService(
        index.timers, invoker, origin=lambda: "http://127.0.0.1:1", status_file=status_file
    )
    await service.start()
    try:
        yield service, module
    finally:
        await service.stop()
        executor.shutdown(wait=False)


async def _calls_of(module: Any, name: str, count: int, within: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + within
    while True:
        calls = [call for call in module.CALLS if call["name"] == name]
        if len(calls) >= count:
            return calls
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} ran {len(calls)} times, not {count}: {module.CALLS}")
        await asyncio.sleep(0.02)


async def test_run_on_startup_then_schedule(tmp_path: Path) -> None:
    async for _service_obj, module in _service(tmp_path / "status.json"):
        calls = await _calls_of(module, "every_second", 2)
        assert calls[0]["past_due"] is False
        # The first call comes from run_on_startup, before any scheduled occurrence.
        startup = await _calls_of(module, "on_startup", 1)
        assert startup[0]["past_due"] is False


async def test_missed_occurrence_runs_past_due_with_monitor(tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    status_file.write_text(
        json.dumps(
            {"hourly_monitored": {"Last": "2020-01-01T00:00:00Z", "Next": "2020-01-01T01:00:00Z"}}
        )
    )
    async for _service_obj, module in _service(status_file):
        calls = await _calls_of(module, "hourly_monitored", 1)
        assert calls[0]["past_due"] is True
        assert calls[0]["schedule_status"]["Next"] == "2020-01-01T01:00:00Z"
    saved = json.loads(status_file.read_text())["hourly_monitored"]
    assert datetime.fromisoformat(saved["Next"].replace("Z", "+00:00")) > datetime.now(UTC)
    assert saved["Last"] != "2020-01-01T00:00:00Z"


async def test_failing_timer_function_is_logged_and_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async for _service_obj, module in _service(None):
        await _calls_of(module, "failing", 2)
    assert any("Functions.failing" in record.getMessage() for record in caplog.records)


def test_bad_schedule_names_the_function(tmp_path: Path) -> None:
    app_dir = tmp_path / "badtimer"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.timer_trigger(schedule='nonsense', arg_name='t')\n"
        "def broken_timer(t: func.TimerRequest) -> None:\n"
        "    pass\n"
    )
    index = load_app(app_dir)
    with pytest.raises(AppLoadError, match=r"broken_timer.*NCRONTAB"):
        TimerService(
            index.timers, FunctionInvoker(ThreadPoolExecutor(1), function_directory=""), origin=str
        )
