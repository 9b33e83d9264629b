"""Run durablehost as a real subprocess: for end-to-end and crash tests, benchmarks,
and your own app's tests.

    from durablehost.process import run_host_process

    def test_chaining(tmp_path):
        with run_host_process(APP_DIR, hub=tmp_path / "hub.sqlite3") as host:
            response = httpx.post(f"{host.url}/api/orchestrators/hello_sequence")
            ...
            host.kill()     # SIGKILL, like a crash
            host.start()    # same port, same hub: in-flight work resumes
            ...

What it does:
- runs `python -m durablehost start --app APP --port PORT --hub HUB` with this
  interpreter, the repo on PYTHONPATH, the current environment plus `env` (a None value
  removes a variable), in the app folder;
- waits until the port accepts connections (the host binds only once the app is loaded
  and the engine started), failing fast with the host's log when the process exits first;
  if a free port was picked and got taken in the meantime, retries on another one;
- writes stdout and stderr to one log file (never a pipe, so a chatty host cannot block);
  `logs()` returns it, and when the `with` block fails the log is printed to stderr so
  pytest shows it with the failure;
- on exit stops the process with SIGTERM, then SIGKILL after `stop_timeout` seconds; on
  Linux the host is also SIGKILLed if the test process itself dies.

`HostProcess` gives `.url`, `.port`, `.pid`, `.hub`, `.kill()` (SIGKILL and reap),
`.stop()` (SIGTERM and wait; returns the exit code), `.start()` (start again on the same
port and hub after kill/stop), `.logs()` and `.wait_for_log(text)`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["HostProcess", "HostStartError", "free_port", "run_host_process"]

# The folder holding the durablehost package: on the child's PYTHONPATH, so
# `python -m durablehost` works from a checkout that is not pip-installed.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_START_ATTEMPTS = 3
_ADDRESS_IN_USE = "cannot listen on"


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HostStartError(RuntimeError):
    """The host process exited or never served; the message ends with its log."""


class HostProcess:
    """One durablehost process (restartable on the same port and hub).

    Start (and restart) it from a thread that outlives it, normally the main thread: it is
    killed when the thread that started it ends (see `_die_with_parent`).
    """

    def __init__(
        self,
        app_dir: Path,
        *,
        hub: Path,
        port: int | None,
        env: Mapping[str, str | None],
        args: Sequence[str],
        log_path: Path,
        start_timeout: float,
        stop_timeout: float,
    ) -> None:
        self.app_dir = app_dir
        self.hub = hub
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self._env = dict(env)
        self._args = list(args)
        self.log_path = log_path
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`, no trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process id of the running host."""
        if self._proc is None:
            raise RuntimeError("the host process is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The command line the host runs with."""
        return [
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
            *self._args,
        ]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name, value in self._env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        python_path = [
            str(PACKAGE_ROOT),
            *filter(None, env.get("PYTHONPATH", "").split(os.pathsep)),
        ]
        env["PYTHONPATH"] = os.pathsep.join(python_path)
        # Unbuffered so logs() sees lines as they are written.
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self) -> None:
        """Start the process and wait until it serves (again, after kill/stop)."""
        if self.running:
            raise RuntimeError("the host process is already running")
        for attempt in range(_START_ATTEMPTS):
            if self._launch():
                return
            if self._fixed_port or _ADDRESS_IN_USE not in self.logs() or attempt == 2:
                break
            self.port = free_port()  # someone took the free port meanwhile: try another
        raise HostStartError(
            f"durablehost did not start (exit code {self._proc.returncode if self._proc else None})"
            f"; command: {' '.join(self.command())}\n--- host log ---\n{self.logs()}"
        )

    def _launch(self) -> bool:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        self._log.write(f"\n=== start: {' '.join(self.command())}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self.command(),
            cwd=self.app_dir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._reap()
                return False
            if _accepts(self.port) and "Host started" in self._log_text(offset):
                return True
            time.sleep(0.05)
        self.kill()
        raise HostStartError(
            f"durablehost did not serve within {self._start_timeout}s\n--- host log ---\n"
            + self.logs()
        )

    def _log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def logs(self) -> str:
        """Everything the host wrote so far (stdout and stderr, every start)."""
        return self._log_text()

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """Wait until `text` appears in the log; returns the log. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.logs()
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the host log after {timeout}s:\n{log}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the host (a crash: nothing gets to clean up) and reap it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._reap()

    def stop(self) -> int | None:
        """SIGTERM, wait up to stop_timeout, then SIGKILL; returns the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return self._reap()

    def _reap(self) -> int | None:
        code: int | None = None
        if self._proc is not None:
            code = self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies, so a crashed or
    killed pytest run leaves no host behind holding ports and hub files.

    Linux sends the signal when the THREAD that started the child ends, not the process:
    call `start()` from a thread that lives as long as the host should (the main thread).
    """
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def run_host_process(
    app_dir: str | Path,
    *,
    hub: str | Path | None = None,
    port: int | None = None,
    env: Mapping[str, str | None] | None = None,
    args: Sequence[str] = (),
    start_timeout: float = 60.0,
    stop_timeout: float = 15.0,
) -> Iterator[HostProcess]:
    """Start `python -m durablehost start` for `app_dir` and stop it when the block ends.

    `hub` defaults to a file in a fresh temporary folder (removed afterwards, like the
    log); pass a path to keep the hub across hosts. `port` defaults to a free port. `env`
    adds environment variables (a None value removes an inherited one); `args` adds
    command-line options (e.g. "--enforce-keys").
    """
    scratch = Path(tempfile.mkdtemp(prefix="durablehost-proc-"))
    process = HostProcess(
        Path(app_dir).resolve(),
        hub=Path(hub) if hub is not None else scratch / "hub.sqlite3",
        port=port,
        env=env or {},
        args=args,
        log_path=scratch / "host.log",
        start_timeout=start_timeout,
        stop_timeout=stop_timeout,
    )
    failed = False
    try:
        process.start()
        yield process
    except HostStartError:
        raise  # its message already holds the log
    except BaseException:
        failed = True
        raise
    finally:
        process.stop()
        if failed:
            sys.stderr.write(f"--- durablehost log ({process.log_path}) ---\n{process.logs()}\n")
        shutil.rmtree(scratch, ignore_errors=True)
