"""The host as a real process (tests/support/hostproc.py): serve, SIGKILL, restart on the
same port and hub, SIGTERM exits cleanly, start-up output and keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.hostproc import HostStartError, run_host_process

APPS = Path(__file__).parent / "apps"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture
def durable_app(tmp_path: Path) -> Path:
    app_dir = tmp_path / "app"
    shutil.copytree(APPS / "durable_basic", app_dir)
    (app_dir / "local.settings.json").write_text(
        json.dumps({"Values": {"HUB_NAME": "ProcHub", "TICK_SCHEDULE": "0 0 0 1 1 *"}})
    )
    return app_dir


def _wait_completed(http: httpx.Client, status_url: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(status_url)
        if response.status_code == 200:
            return dict(response.json())
        assert response.status_code == 202, response.text
        if time.monotonic() > deadline:
            raise AssertionError(f"not finished after {timeout}s: {response.text}")
        time.sleep(0.05)


def test_serves_survives_sigkill_and_stops_on_sigterm(durable_app: Path, tmp_path: Path) -> None:
    with (
        run_host_process(durable_app, hub=tmp_path / "hub.sqlite3") as host,
        httpx.Client(timeout=30) as http,
    ):
        assert f"http_start: [POST] {host.url}/api/orchestrators/{{functionName}}" in host.logs()
        response = http.post(f"{host.url}/api/orchestrators/hello_sequence")
        assert response.status_code == 202
        status_url = response.headers["Location"]
        assert status_url.startswith(host.url)
        assert _wait_completed(http, status_url)["output"] == [
            "Hello Tokyo!",
            "Hello Seattle!",
            "Hello London!",
        ]
        first_pid, port = host.pid, host.port

        host.kill()
        assert not host.running
        host.start()
        assert (host.pid, host.port) != (first_pid, None) and host.port == port
        # Same hub: the finished instance is still there after the crash.
        assert _wait_completed(http, status_url)["runtimeStatus"] == "Completed"

        assert host.stop() == 0
        assert "received SIGTERM, stopping" in host.logs()
        assert "stopped" in host.logs()


def test_enforce_keys_prints_and_checks_keys(durable_app: Path) -> None:
    (durable_app / "function_app.py").write_text(
        (durable_app / "function_app.py").read_text()
        + "\n\n@app.route(route='secret', auth_level=func.AuthLevel.FUNCTION)\n"
        "def secret(req: func.HttpRequest) -> str:\n"
        "    return 'ok'\n"
    )
    with run_host_process(durable_app, args=["--enforce-keys"]) as host:
        keys = json.loads((durable_app / ".durablehost" / "keys.json").read_text())
        assert keys["hostKeys"]["default"] in host.logs()
        assert httpx.get(f"{host.url}/api/secret").status_code == 401
        answer = httpx.get(f"{host.url}/api/secret", params={"code": keys["hostKeys"]["default"]})
        assert answer.text == "ok"


def test_start_failure_raises_with_the_log(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text("raise RuntimeError('broken on purpose')\n")
    with pytest.raises(HostStartError, match="broken on purpose"), run_host_process(tmp_path):
        pass


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux-only")
def test_host_dies_with_the_test_process(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\napp = func.FunctionApp()\n"
    )
    driver = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from tests.support.hostproc import run_host_process\n"
        f"with run_host_process({str(tmp_path)!r}) as host:\n"
        "    print(host.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        host_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(host_pid):
            assert time.monotonic() < deadline, "the host outlived its test process"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent is gone; init reaps it).
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
