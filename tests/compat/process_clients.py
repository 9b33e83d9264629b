"""Client families that run as their own process: the Node scripts (axios, fetch), the
curl script and the opsclient CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.compat.families import RunWatcher, StoredOperation, Unwatched
from tests.compat.outcomes import Ending, Exchange, Outcome

__all__ = ["CliClient", "CurlClient", "NodeClient", "ProcessRun", "run_process"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Longer than any wait a client is given, shorter than pytest's own timeout.
PROCESS_TIMEOUT = 90.0
CLIENT_TIMEOUT_SECONDS = 60


@dataclass
class ProcessRun:
    """A finished client process and the answers it reported on stderr."""

    returncode: int
    stdout: str
    stderr: str
    exchanges: list[Exchange] = field(default_factory=list)


# How a client process reports what it sees, one line of stderr each (None: not such a line).
ExchangeParser = Callable[[str], Exchange | None]


def run_process(
    argv: list[str],
    watch: RunWatcher,
    started: re.Pattern[str],
    parse_exchange: ExchangeParser = lambda _line: None,
    env: dict[str, str] | None = None,
) -> ProcessRun:
    """Run `argv` to its end, telling `watch` of the start and of each answer as stderr
    reports them."""
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    stdout_chunks: list[str] = []
    stderr_lines: list[str] = []
    exchanges: list[Exchange] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if exchange := parse_exchange(line.rstrip("\n")):
                exchanges.append(exchange)
                watch.answered(exchange)
                continue
            stderr_lines.append(line)
            if match := started.search(line):
                watch.started(match.group(1))

    def read_stdout() -> None:
        assert process.stdout is not None
        stdout_chunks.append(process.stdout.read())

    readers = [threading.Thread(target=read_stderr), threading.Thread(target=read_stdout)]
    for reader in readers:
        reader.start()
    try:
        returncode = process.wait(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{argv[:3]} still running after {PROCESS_TIMEOUT} s") from None
    finally:
        for reader in readers:
            reader.join()
    return ProcessRun(returncode, "".join(stdout_chunks), "".join(stderr_lines), exchanges)


# ------------------------------------------------------------------------------- Node

_NODE_STARTED = re.compile(r"^started (\S+)")


def _node_exchange(line: str) -> Exchange | None:
    if not line.startswith("exchange "):
        return None
    reported = json.loads(line.removeprefix("exchange "))
    return Exchange(
        method=reported["method"],
        url=reported["url"],
        status=reported["status"],
        retry_after=reported["retryAfter"],
        location=reported["location"],
        body_status=reported["bodyStatus"],
    )


@dataclass(frozen=True)
class NodeClient:
    """tests/compat/js: the axios interceptor or the fetch loop, following the 202's
    `Location` (the monitor) or its `Operation-Location` (the status resource)."""

    node: str
    library: Literal["axios", "fetch"]
    follow: Literal["location", "operation-location"] = "location"
    expired_status: int = 410
    records_exchanges: bool = True
    follows_result_redirect: bool = True

    @property
    def name(self) -> str:
        return f"{self.library}-{self.follow}"

    def run(self, base_url: str, kind: str, body: Any, watch: RunWatcher) -> Outcome:
        return self._outcome(["run", base_url, kind, json.dumps(body)], watch)

    def resume(self, stored: StoredOperation) -> Outcome:
        url = stored.monitor_url if self.follow == "location" else stored.status_url
        return self._outcome(["resume", url], Unwatched())

    def _outcome(self, args: list[str], watch: RunWatcher) -> Outcome:
        run = run_process(
            [self.node, str(HERE / "js" / "client.mjs"), self.library, self.follow, *args],
            watch,
            _NODE_STARTED,
            _node_exchange,
            env={"COMPAT_TIMEOUT_MS": str(CLIENT_TIMEOUT_SECONDS * 1000)},
        )
        try:
            report = json.loads(run.stdout)
        except ValueError:
            raise AssertionError(
                f"node printed no outcome: {run.stdout!r} {run.stderr!r}"
            ) from None
        if report["outcome"] == "succeeded" and run.returncode == 0:
            return Outcome(Ending.SUCCEEDED, result=report["result"], exchanges=run.exchanges)
        error = report["error"]
        ending = {"Failed": Ending.FAILED, "Canceled": Ending.CANCELED}.get(
            error.get("operationStatus") or "",
            Ending.ERROR if error.get("status") else Ending.UNCLEAR,
        )
        return Outcome(
            ending,
            message=f"{error['name']}: {error['message']}",
            status_code=error.get("status"),
            exchanges=run.exchanges,
        )


# ------------------------------------------------------------------------------- curl

_CURL_STARTED = re.compile(r"^started (\S+)")
_CURL_EXCHANGE = re.compile(r"^[A-Z]+\|\d{3}\|")
_CURL_HTTP_ERROR = 22  # curl --fail-with-body: the server answered >= 400


def _curl_exchange(line: str) -> Exchange | None:
    if not _CURL_EXCHANGE.match(line):
        return None
    method, code, redirects, retry_after, location, url, status = line.split("|")
    return Exchange(
        method=method,
        url=url,
        status=int(code),
        retry_after=retry_after or None,
        location=location or None,
        body_status=status or None,
        redirected=int(redirects) > 0,
    )


@dataclass(frozen=True)
class CurlClient:
    """tests/compat/sh/curl-operation.sh: POST, then `curl -sL` on the Location."""

    name: str = "curl"
    expired_status: int = 410
    records_exchanges: bool = True
    follows_result_redirect: bool = True

    def run(self, base_url: str, kind: str, body: Any, watch: RunWatcher) -> Outcome:
        return self._outcome(["run", base_url, kind, json.dumps(body)], watch)

    def resume(self, stored: StoredOperation) -> Outcome:
        return self._outcome(["resume", stored.monitor_url], Unwatched())

    def _outcome(self, args: list[str], watch: RunWatcher) -> Outcome:
        run = run_process(
            ["bash", str(HERE / "sh" / "curl-operation.sh"), *args],
            watch,
            _CURL_STARTED,
            _curl_exchange,
            # The script's exchange log goes to stderr, where run_process reads it live.
            env={"CURL_LOG": "/dev/stderr", "OPS_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS)},
        )
        if run.returncode == 0:
            return Outcome(Ending.SUCCEEDED, result=json.loads(run.stdout), exchanges=run.exchanges)
        if run.returncode != _CURL_HTTP_ERROR:
            message = f"exit {run.returncode}: {run.stderr}"
            return Outcome(Ending.UNCLEAR, message=message, exchanges=run.exchanges)
        problem = json.loads(run.stdout)  # --fail-with-body: the problem body, on stdout
        ending = {"Failed": Ending.FAILED, "Canceled": Ending.CANCELED}.get(
            problem.get("operationStatus") or "", Ending.ERROR
        )
        return Outcome(
            ending,
            message=str(problem.get("detail")),
            status_code=int(problem["status"]),
            exchanges=run.exchanges,
        )


# ------------------------------------------------------------------------------- the CLI

_CLI_STARTED = re.compile(r"started \S+ operation (\S+)")
# The exit codes docs/client.md documents for an operation that ended without a result...
_CLI_EXIT_ENDINGS = {1: Ending.FAILED, 5: Ending.CANCELED}
# ... and for the error answers a wait can end on (6 not found, 7 gone).
_CLI_EXIT_STATUS = {6: 404, 7: 410}


@dataclass(frozen=True)
class CliClient:
    """`python -m opsclient run` and `python -m opsclient wait`. Its answers are not
    visible to the test (the same library's are, through opsclient-sync)."""

    name: str = "opsclient-cli"
    expired_status: int = 410
    records_exchanges: bool = False
    follows_result_redirect: bool = True

    def run(self, base_url: str, kind: str, body: Any, watch: RunWatcher) -> Outcome:
        command = ["run", kind, "--input", json.dumps(body), "--base-url", base_url]
        return self._outcome([*command, "--no-progress"], watch)

    def resume(self, stored: StoredOperation) -> Outcome:
        return self._outcome(["wait", stored.monitor_url], Unwatched())

    def _outcome(self, args: list[str], watch: RunWatcher) -> Outcome:
        command = [sys.executable, "-m", "opsclient", *args]
        run = run_process([*command, "--timeout", str(CLIENT_TIMEOUT_SECONDS)], watch, _CLI_STARTED)
        if run.returncode == 0:
            return Outcome(Ending.SUCCEEDED, result=json.loads(run.stdout))
        if ending := _CLI_EXIT_ENDINGS.get(run.returncode):
            return Outcome(ending, message=run.stderr)
        if status_code := _CLI_EXIT_STATUS.get(run.returncode):
            return Outcome(Ending.ERROR, message=run.stderr, status_code=status_code)
        return Outcome(Ending.UNCLEAR, message=f"exit {run.returncode}: {run.stderr}")
