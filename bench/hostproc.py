"""A durablehost process for one workload: free port, own hub file, bench app."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

__all__ = ["APP_DIR", "BenchHost", "HostStartError", "free_port"]

REPO = Path(__file__).resolve().parents[1]
APP_DIR = Path(__file__).resolve().parent / "apps" / "bench_app"
_START_TIMEOUT = 60.0


class HostStartError(RuntimeError):
    """The host process exited or never served; the message ends with its log."""


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchHost:
    """`python -m durablehost start` on the bench app, as a context manager."""

    def __init__(self, hub: Path, *, app_dir: Path = APP_DIR) -> None:
        self.hub = hub
        self.app_dir = app_dir
        self.port = free_port()
        self.log_path = hub.with_suffix(".log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The host's process id."""
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        """Start the host and wait until it serves."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "durablehost",
            "start",
            "--app",
            str(self.app_dir),
            "--port",
            str(self.port),
            "--hub",
            str(self.hub),
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command,
                cwd=self.app_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise HostStartError(f"durablehost exited\n{self.logs()}")
            if "Host started" in self.logs() and _accepts(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise HostStartError(f"durablehost did not serve in {_START_TIMEOUT}s\n{self.logs()}")

    def logs(self) -> str:
        """What the host printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the host in MB, from /proc."""
        fields: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> BenchHost:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
