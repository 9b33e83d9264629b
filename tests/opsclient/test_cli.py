"""The CLI against a real HTTP server on a free port: as a subprocess, and via CliRunner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from opsclient.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_REQUEST,
    EXIT_TIMEOUT,
    main,
)
from tests.opsclient.fake_api import RunningFakeAPI, serve_fake_api

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def api() -> Iterator[RunningFakeAPI]:
    with serve_fake_api() as running:
        yield running


def opsclient(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m opsclient ARGS` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "opsclient", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input)


# -- as a subprocess -------------------------------------------------------------------------


def test_run_prints_the_result_and_progress(api: RunningFakeAPI) -> None:
    done = opsclient("run", "report", "--input", '{"rows": 7}', "--base-url", api.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"rows": 7, "kind": "report"}
    progress_lines = [line for line in done.stderr.splitlines() if line.startswith("progress")]
    assert progress_lines == ["progress 33% step 1", "progress 67% step 2"]
    assert "started report operation op1" in done.stderr


def test_invalid_json_input_exits_2_with_a_clear_message(api: RunningFakeAPI) -> None:
    done = opsclient("run", "report", "--input", "{rows: 7", "--base-url", api.url)
    assert done.returncode == EXIT_BAD_INPUT
    assert "Invalid value for '--input': not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr
    assert api.state.requests == []  # nothing was sent


def test_a_failing_operation_exits_1_with_the_servers_message(api: RunningFakeAPI) -> None:
    done = opsclient("run", "fails", "--input", "{}", "--base-url", api.url)
    assert done.returncode == EXIT_FAILED
    assert "partition 3 could not be generated" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("cancel_on_interrupt", [True, False])
def test_ctrl_c(api: RunningFakeAPI, cancel_on_interrupt: bool) -> None:
    flags = ["--cancel-on-interrupt"] if cancel_on_interrupt else []
    child = subprocess.Popen(
        [sys.executable, "-m", "opsclient", "run", "slow", "--input", "{}", *flags],
        cwd=REPO,
        env={**os.environ, "OPSCLIENT_BASE_URL": api.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(method == "GET" for method, _p, _h in api.state.requests):
            assert time.monotonic() < deadline and child.poll() is None, "the CLI never polled"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in err
    state = api.state.operations["op1"].state
    if cancel_on_interrupt:
        assert "canceled operation op1 on the server" in err
        assert state == "Canceled"
    else:
        assert "keeps running" in err
        assert state == "Running"


# -- in process ------------------------------------------------------------------------------


def test_base_url_from_the_environment(api: RunningFakeAPI, tmp_path: Path) -> None:
    (tmp_path / "input.json").write_text('{"rows": 3}')
    result = invoke(
        "run",
        "report",
        "--input",
        f"@{tmp_path / 'input.json'}",
        "--out",
        str(tmp_path / "report.json"),
        env={"OPSCLIENT_BASE_URL": api.url},
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "report.json").read_text()) == {"rows": 3, "kind": "report"}
    assert result.stdout == ""


def test_input_from_stdin_with_a_live_progress_bar(api: RunningFakeAPI) -> None:
    result = invoke(
        "run", "report", "--input", "@-", "--progress", "--base-url", api.url, input='{"rows": 2}'
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"rows": 2, "kind": "report"}
    assert "report" in result.stderr and "100%" in result.stderr


def test_missing_input_file(api: RunningFakeAPI, tmp_path: Path) -> None:
    result = invoke("run", "report", "--input", f"@{tmp_path}/nope.json", "--base-url", api.url)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "cannot read" in result.stderr


def test_missing_base_url_says_how_to_give_it() -> None:
    result = invoke("run", "report", "--input", "{}", env={"OPSCLIENT_BASE_URL": ""})
    assert result.exit_code == EXIT_BAD_INPUT
    assert "--base-url or set OPSCLIENT_BASE_URL" in result.stderr


def test_input_the_server_refuses_exits_2_with_its_detail(api: RunningFakeAPI) -> None:
    result = invoke("run", "report", "--input", '{"rows": "many"}', "--base-url", api.url)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "rows: must be an integer >= 1" in result.stderr
    unknown = invoke("start", "nosuchkind", "--input", "{}", "--base-url", api.url)
    assert unknown.exit_code == EXIT_BAD_INPUT
    assert "there is no kind 'nosuchkind'" in unknown.stderr


def test_timeout_exits_3(api: RunningFakeAPI) -> None:
    result = invoke("run", "slow", "--input", "{}", "--timeout", "0.6", "--base-url", api.url)
    assert result.exit_code == EXIT_TIMEOUT
    assert "timed out" in result.stderr


def test_unreachable_server_exits_4() -> None:
    with serve_fake_api() as gone:
        url = gone.url  # the port is closed once the server stops
    result = invoke("status", "op1", "--base-url", url)
    assert result.exit_code == EXIT_REQUEST
    assert "failed" in result.stderr


def test_start_status_wait_result_cancel_and_list(api: RunningFakeAPI) -> None:
    started = invoke("start", "report", "--input", '{"rows": 5}', "--base-url", api.url)
    assert started.exit_code == 0, started.output
    operation = json.loads(started.stdout)
    assert operation["id"] == "op1"
    assert operation["operationUrl"] == f"{api.url}/api/operations/op1"

    status = invoke("status", "op1", "--base-url", api.url)
    assert json.loads(status.stdout)["state"] == "Running"

    waited = invoke("wait", operation["operationUrl"])  # a URL needs no base URL
    assert waited.exit_code == 0, waited.output
    assert json.loads(waited.stdout)["state"] == "Succeeded"

    fetched = invoke("result", "op1", "--base-url", api.url)
    assert json.loads(fetched.stdout) == {"rows": 5, "kind": "report"}

    too_late = invoke("cancel", "op1", "--base-url", api.url)
    assert too_late.exit_code == EXIT_BAD_INPUT
    assert "already finished" in too_late.stderr

    slow = json.loads(invoke("start", "slow", "--input", "{}", "--base-url", api.url).stdout)
    canceled = invoke("cancel", slow["id"], "--base-url", api.url)
    assert canceled.exit_code == 0, canceled.output
    assert api.state.operations[slow["id"]].state == "Canceled"

    listed = invoke("list", "--base-url", api.url)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["state"]) for r in rows] == [("op1", "Succeeded"), ("op2", "Canceled")]


def test_repeated_idempotency_key_returns_the_same_operation(api: RunningFakeAPI) -> None:
    args = ["start", "report", "--input", '{"rows": 1}', "--idempotency-key", "k1"]
    first = json.loads(invoke(*args, "--base-url", api.url).stdout)
    second = json.loads(invoke(*args, "--base-url", api.url).stdout)
    assert first["id"] == second["id"]
    assert {h["idempotency-key"] for _m, _p, h in api.state.requests} == {"k1"}
