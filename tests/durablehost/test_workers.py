"""Activities in worker processes (durablehost.workers), over real host processes.

Activities run in children of the host and their results and failures come back as they
do in-process; a worker SIGKILLed mid-activity is replaced and the activity runs again;
`--workers 0` keeps everything in the host process; the setting is read from the
environment and local.settings.json; workers end with their host, however it ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from durablehost.app.loader import FunctionIndex, load_app
from durablehost.engine.activities import ActivityDispatcher, ActivityResult, ThreadRunner
from durablehost.errors import ConfigError
from durablehost.store.base import ActivityWork
from durablehost.workers import WorkerPool, default_worker_count, worker_count
from tests.support.hostproc import HostProcess, run_host_process

APP = Path(__file__).parent / "apps" / "workers"
MGMT = "runtime/webhooks/durabletask"
REPO = Path(__file__).resolve().parents[2]
TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def _until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return value


def _run(host: HostProcess, name: str, value: Any = None, timeout: float = 60) -> dict[str, Any]:
    """Start orchestrator `name` and return its final status, with history."""
    with httpx.Client(base_url=host.url, timeout=30) as client:
        started = client.post(f"/{MGMT}/orchestrators/{name}", json=value)
        assert started.status_code == 202, started.text
        instance_id = started.json()["id"]

        def finished() -> dict[str, Any] | None:
            status = client.get(
                f"/{MGMT}/instances/{instance_id}",
                params={"showHistory": "true", "showHistoryOutput": "true"},
            ).json()
            return status if status["runtimeStatus"] in TERMINAL else None

        result: dict[str, Any] = _until(finished, timeout, f"{name} to finish")
        return result


def _children(pid: int) -> set[int]:
    """Process ids whose parent is `pid`."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def workers_host() -> Iterator[HostProcess]:
    """Two workers, chosen by the setting (not the option)."""
    with run_host_process(APP, env={"FUNCTIONS_WORKER_PROCESS_COUNT": "2"}) as host:
        yield host


@pytest.fixture(scope="module")
def inline_host() -> Iterator[HostProcess]:
    with run_host_process(APP, args=["--workers", "0"]) as host:
        yield host


@linux_only
def test_activities_run_in_children_of_the_host(workers_host: HostProcess) -> None:
    status = _run(workers_host, "where")
    assert status["runtimeStatus"] == "Completed", status
    pids = status["output"]
    assert pids["orchestrator"] == workers_host.pid  # orchestrators stay in the host
    for kind in ("sync", "async"):
        assert pids[kind] != workers_host.pid
        assert pids[kind] in _children(workers_host.pid)


def test_workers_0_runs_everything_in_the_host_process(inline_host: HostProcess) -> None:
    status = _run(inline_host, "where")
    assert status["output"] == {
        "sync": inline_host.pid,
        "async": inline_host.pid,
        "orchestrator": inline_host.pid,
    }


def _task_failed(status: dict[str, Any]) -> dict[str, Any]:
    [event] = [e for e in status["historyEvents"] if e["EventType"] == "TaskFailed"]
    return event


def test_a_failure_comes_back_as_it_does_in_process(
    workers_host: HostProcess, inline_host: HostProcess
) -> None:
    there = _run(workers_host, "failing", 7)
    here = _run(inline_host, "failing", 7)
    assert there["output"] == here["output"]
    assert "Activity function 'broken' failed: ValueError: no good: 7" in there["output"]
    failed_there, failed_here = _task_failed(there), _task_failed(here)
    assert failed_there["Reason"] == failed_here["Reason"]
    assert failed_there["Details"] == failed_here["Details"]
    assert 'raise ValueError(f"no good: {n}")' in failed_there["Details"]


def test_inputs_and_results_of_a_few_megabytes(workers_host: HostProcess) -> None:
    size = 3_000_000
    expected = "".join(chr(ord("a") + i % 26) for i in range(size))
    status = _run(workers_host, "big", size)
    assert status["output"] == {
        "length": size,
        "sha256": hashlib.sha256(expected.encode()).hexdigest(),
    }


def test_what_an_activity_logs_and_prints_reaches_the_host_log(workers_host: HostProcess) -> None:
    word = uuid.uuid4().hex
    assert _run(workers_host, "chatty", word)["output"] == word
    log = workers_host.wait_for_log(f"printed by the activity: {word}")
    lines = [line for line in log.splitlines() if word in line]
    assert any("[worker " in line and f"logged by the activity: {word}" in line for line in lines)
    assert any(line.startswith("[worker ") and "printed by" in line for line in lines)


@linux_only
def test_a_worker_killed_mid_activity_is_replaced_and_the_activity_runs_again(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "runs.txt"
    with run_host_process(APP, args=["--workers", "1"]) as host:
        with httpx.Client(base_url=host.url, timeout=30) as client:
            started = client.post(f"/{MGMT}/orchestrators/killable", json=str(marker))
            instance_id = started.json()["id"]
            first = int(_until(lambda: marker.exists() and marker.read_text(), 30, "a run"))
            assert first in _children(host.pid)
            os.kill(first, signal.SIGKILL)

            def output() -> Any:
                status = client.get(f"/{MGMT}/instances/{instance_id}").json()
                return status if status["runtimeStatus"] in TERMINAL else None

            status = _until(output, 60, "the orchestration to finish")
        second = int(marker.read_text().split()[1])
        assert second != first
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"] == f"ran again in {second} after 1 run(s)"
        log = host.wait_for_log("running its 1 activities again")
        assert f"(pid {first}) exited with code -9" in log
        # The replacement serves what comes next.
        assert _run(host, "where")["output"]["sync"] == second


@linux_only
def test_a_sigkilled_host_takes_its_workers_with_it() -> None:
    with run_host_process(APP, args=["--workers", "2"]) as host:
        _run(host, "where")  # both workers are up by now, or at least one
        workers = _until(
            lambda: len(_children(host.pid)) >= 4 and _children(host.pid), 30, "workers"
        )
        host.kill()
        _until(lambda: not any(_alive(pid) for pid in workers), 30, "the workers to end")


@linux_only
def test_a_stopped_host_stops_its_workers() -> None:
    with run_host_process(APP, args=["--workers", "2"]) as host:
        _run(host, "where")
        workers = _children(host.pid)
        assert host.stop() == 0
        _until(lambda: not any(_alive(pid) for pid in workers), 30, "the workers to end")


def test_the_setting_is_read_from_local_settings(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__", ".durablehost"))
    settings = {"IsEncrypted": False, "Values": {"FUNCTIONS_WORKER_PROCESS_COUNT": "0"}}
    (app / "local.settings.json").write_text(json.dumps(settings))
    with run_host_process(app, env={"FUNCTIONS_WORKER_PROCESS_COUNT": None}) as host:
        assert _run(host, "where")["output"]["sync"] == host.pid


@pytest.mark.parametrize(
    ("setting", "args", "code", "message"),
    [
        ("many", [], 1, "FUNCTIONS_WORKER_PROCESS_COUNT is 'many': give a whole number from 0"),
        ("11", [], 1, "FUNCTIONS_WORKER_PROCESS_COUNT is '11'"),
        ("-1", [], 1, "FUNCTIONS_WORKER_PROCESS_COUNT is '-1'"),
        (None, ["--workers", "11"], 2, "Invalid value for '--workers'"),
        (None, ["--workers", "x"], 2, "Invalid value for '--workers'"),
    ],
)
def test_an_unusable_worker_count_is_refused(
    tmp_path: Path, setting: str | None, args: list[str], code: int, message: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("FUNCTIONS_WORKER_PROCESS_COUNT", None)
    if setting is not None:
        env["FUNCTIONS_WORKER_PROCESS_COUNT"] = setting
    command = [sys.executable, "-m", "durablehost", "start", "--app", str(APP), "--port", "0"]
    done = subprocess.run(
        [*command, "--hub", str(tmp_path / "hub.sqlite3"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


# -- the setting, on its own ------------------------------------------------------------


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 4)])
def test_the_default_is_half_the_cores_from_1_to_4(cores: int, workers: int) -> None:
    assert default_worker_count(cores) == workers


@pytest.mark.parametrize(("text", "count"), [("0", 0), ("1", 1), (" 3 ", 3), ("10", 10)])
def test_worker_count_reads_the_setting(text: str, count: int) -> None:
    assert worker_count({"FUNCTIONS_WORKER_PROCESS_COUNT": text}) == count


@pytest.mark.parametrize("text", ["11", "-1", "1.5", "two", "\u0663"])
def test_worker_count_refuses_what_is_not_0_to_10(text: str) -> None:
    with pytest.raises(ConfigError, match="FUNCTIONS_WORKER_PROCESS_COUNT"):
        worker_count({"FUNCTIONS_WORKER_PROCESS_COUNT": text})


def test_an_unset_worker_count_is_the_default() -> None:
    assert worker_count({}) == default_worker_count()


# -- one interface: the dispatcher gives the same results with either runner -------------


@pytest.fixture(scope="module")
def index() -> FunctionIndex:
    return load_app(APP)


def _work(name: str, value: Any, work_id: int) -> ActivityWork:
    return ActivityWork(f"i{work_id}", "e", work_id, name, json.dumps(value), work_id=work_id)


async def _results(index: FunctionIndex, runner: Any, works: list[ActivityWork]) -> dict[int, Any]:
    """What the dispatcher delivers for `works`, run through `runner`."""
    delivered: list[ActivityResult] = []
    dispatcher = ActivityDispatcher(
        index, concurrency=4, clock=_clock, deliver=delivered.append, runner=runner
    )
    dispatcher.start()
    try:
        for work in works:
            dispatcher.submit(work)
        deadline = asyncio.get_running_loop().time() + 60
        while len(delivered) < len(works):
            assert asyncio.get_running_loop().time() < deadline, "results did not come"
            await asyncio.sleep(0.01)
    finally:
        dispatcher.stop()
    return {
        r.work_id: (r.event.event_type, r.event.result, r.event.reason, r.event.details)
        for r in delivered
    }


def _clock() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


async def test_the_worker_pool_and_the_threads_give_the_same_results(
    index: FunctionIndex,
) -> None:
    works = [
        _work("talk", "hi", 1),
        _work("broken", 3, 2),
        _work("no_such_activity", None, 3),
        _work("measure_big", "x" * 1000, 4),
        *(_work("talk", f"w{n}", 10 + n) for n in range(20)),
    ]
    in_threads = await _results(index, ThreadRunner(index, concurrency=4), works)
    in_workers = await _results(index, WorkerPool(APP, count=2, concurrency=4), works)
    assert in_workers == in_threads
    assert len(in_workers) == len(works)
    assert in_workers[2][2] == "Activity function 'broken' failed: ValueError: no good: 3"
