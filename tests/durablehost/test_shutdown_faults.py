"""Stopping and faults over real host processes: every answer is 202 or 503 (with
Retry-After, problem+json), never 500, and every start acknowledged with 202 runs to
completion after a restart. SIGTERM under load, the hub writer killed under load, a full
disk (a small tmpfs mounted for the test) and a read-only hub (a read-only bind mount)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from durablehost.process import PACKAGE_ROOT, free_port
from durablehost.store import SqliteTaskHubStore
from tests.support.hostproc import HostProcess, run_host_process

pytestmark = pytest.mark.e2e

APPS = Path(__file__).parent / "apps"
MGMT = "runtime/webhooks/durabletask"
PROBLEM = "application/problem+json"
# A start: (status, instance id or None), or ("no answer", why) when the connection was
# refused or closed before any answer (the host had stopped listening).
Outcome = tuple[int | str, str | None]


@pytest.fixture
def durable_app(tmp_path: Path) -> Path:
    app_dir = tmp_path / "app"
    shutil.copytree(APPS / "durable_basic", app_dir)
    (app_dir / "local.settings.json").write_text(
        json.dumps({"Values": {"HUB_NAME": "FaultHub", "TICK_SCHEDULE": "0 0 0 1 1 *"}})
    )
    return app_dir


class Starter:
    """POSTs to the app's HTTP starter from a few threads, one keep-alive client each."""

    def __init__(self, url: str) -> None:
        self._url = f"{url}/api/orchestrators/hello_sequence"
        self._local = threading.local()
        self.refusals: list[httpx.Response] = []

    def start(self) -> Outcome:
        """One start; a 503 is kept in `refusals` for its headers and body."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=30)
        try:
            response = client.post(self._url)
        except httpx.TransportError as exc:
            return "no answer", type(exc).__name__
        if response.status_code == 202:
            return 202, response.json()["id"]
        if response.status_code == 503:
            self.refusals.append(response)
        return response.status_code, None


def _under_load(
    starter: Starter, count: int, fault: Callable[[], None], after: int
) -> list[Outcome]:
    """`count` starts from 8 threads; `fault()` once `after` of them were answered."""
    with ThreadPoolExecutor(8) as pool:
        futures: list[Future[Outcome]] = [pool.submit(starter.start) for _ in range(count)]
        deadline = time.monotonic() + 60
        while sum(f.done() for f in futures) < after:
            assert time.monotonic() < deadline, "the starts did not get answered"
            time.sleep(0.01)
        fault()
        return [future.result() for future in futures]


def _check_answers(outcomes: list[Outcome], starter: Starter) -> list[str]:
    """Every answer 202 or 503 (problem+json, Retry-After); returns the 202s' ids."""
    statuses = {status for status, _ in outcomes}
    assert statuses <= {202, 503, "no answer"}, sorted(map(str, statuses))
    for refusal in starter.refusals:
        assert refusal.headers["content-type"].startswith(PROBLEM), refusal.text
        assert int(refusal.headers["retry-after"]) > 0
        assert refusal.json()["status"] == 503
    acknowledged = [instance_id for status, instance_id in outcomes if status == 202]
    assert acknowledged, "no start was acknowledged before the fault"
    assert all(acknowledged)
    return [i for i in acknowledged if i is not None]


def _wait_completed(host: HostProcess, instance_ids: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    left = list(instance_ids)
    with httpx.Client(base_url=host.url, timeout=30) as client:
        while left:
            status = client.get(f"/{MGMT}/instances/{left[0]}")
            assert status.status_code in (200, 202), status.text
            if status.json()["runtimeStatus"] == "Completed":
                left.pop(0)
                continue
            assert time.monotonic() < deadline, f"{len(left)} not completed: {status.text}"
            time.sleep(0.05)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigterm_under_load_answers_202_or_503_and_loses_no_acknowledged_start(
    durable_app: Path, tmp_path: Path
) -> None:
    with run_host_process(durable_app, hub=tmp_path / "hub.sqlite3", stop_timeout=40) as host:
        starter = Starter(host.url)
        pid = host.pid
        outcomes = _under_load(starter, 300, lambda: os.kill(pid, signal.SIGTERM), after=40)
        _wait(lambda: not host.running, "the host to exit")
        assert host.stop() == 0
        acknowledged = _check_answers(outcomes, starter)
        log = host.logs()
        assert "Traceback" not in log, log

        host.start()
        _wait_completed(host, acknowledged)


def _hub_writer(host_pid: int, hub: Path) -> int | None:
    """The child of the host that has the hub file open (its hub writer process)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != host_pid:
                continue
            if any(os.readlink(fd) == str(hub) for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return None


def test_a_killed_hub_writer_under_load_answers_503_exits_70_and_a_restart_recovers(
    durable_app: Path, tmp_path: Path
) -> None:
    hub = tmp_path / "hub.sqlite3"
    with run_host_process(durable_app, hub=hub, stop_timeout=40) as host:
        _wait(lambda: _hub_writer(host.pid, hub) is not None, "the hub writer process")
        writer = _hub_writer(host.pid, hub)
        assert writer is not None
        starter = Starter(host.url)
        outcomes = _under_load(starter, 200, lambda: os.kill(writer, signal.SIGKILL), after=30)
        _wait(lambda: not host.running, "the host to exit")
        assert host.stop() == 70
        acknowledged = _check_answers(outcomes, starter)
        assert "hub writer process is gone" in host.logs()

        host.start()
        _wait_completed(host, acknowledged)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs mounted for the test (needs root and mount)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root and mount(8)")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; returns it."""
    filler = folder / "filler"
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    return filler


def test_a_full_disk_answers_starts_and_events_503_and_loses_nothing(
    durable_app: Path, small_disk: Path
) -> None:
    with run_host_process(durable_app, hub=small_disk / "hub.sqlite3") as host:
        starter = Starter(host.url)
        before = [starter.start() for _ in range(5)]
        assert {status for status, _ in before} == {202}
        filler = _fill(small_disk)

        outcomes: list[Outcome] = []
        while not starter.refusals:
            assert len(outcomes) < 300, "the full disk never refused a start"
            outcomes.append(starter.start())
        acknowledged = _check_answers(before + outcomes, starter)
        assert starter.refusals[0].headers["retry-after"] == "30"
        assert "out of disk space" in starter.refusals[0].json()["detail"]

        with httpx.Client(base_url=host.url, timeout=30) as client:
            direct = client.post(f"/{MGMT}/orchestrators/hello_sequence")
            assert direct.status_code == 503, direct.text
            assert direct.headers["content-type"].startswith(PROBLEM)
            assert direct.headers["retry-after"] == "30"
            event = client.post(
                f"/{MGMT}/instances/{acknowledged[0]}/raiseEvent/nudge", json={"x": 1}
            )
            assert event.status_code in (503, 410), event.text

            filler.unlink()
            deadline = time.monotonic() + 30
            while (again := starter.start())[0] != 202:
                assert again[0] == 503, again
                assert time.monotonic() < deadline, "starts kept failing after space was freed"
                time.sleep(0.05)
        _wait_completed(host, [*acknowledged, str(again[1])])
        assert " 500 " not in host.logs()


@pytest.fixture
def read_only_hub(tmp_path: Path) -> Iterator[Path]:
    """A task hub file bind-mounted read-only onto itself (root can write a chmod 444
    file, not a read-only mount)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root and mount(8)")
    hub = tmp_path / "hub.sqlite3"
    SqliteTaskHubStore(hub, checkpoints=False).close()
    if subprocess.run(["mount", "--bind", str(hub), str(hub)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(hub)], check=True)
        yield hub
    finally:
        subprocess.run(["umount", "-l", str(hub)], check=False)


def test_a_read_only_hub_refuses_to_start_with_a_clear_message(
    durable_app: Path, read_only_hub: Path
) -> None:
    command = [
        *(sys.executable, "-m", "durablehost", "start", "--app", str(durable_app)),
        *("--port", str(free_port()), "--hub", str(read_only_hub)),
    ]
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    finished = subprocess.run(
        command, cwd=durable_app, env=env, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 1, finished.stderr
    assert f"the task hub {read_only_hub} cannot be written" in finished.stderr
    assert "readonly database" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert "Host started" not in finished.stdout
