"""`python -m durablehost start` refuses unusable apps with one actionable line, exit 1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _app(root: Path, name: str, source: str, host_json: str | None = None) -> Path:
    app_dir = root / name
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(source)
    if host_json is not None:
        (app_dir / "host.json").write_text(host_json)
    return app_dir


GOOD_APP = (
    "import azure.functions as func\n"
    "app = func.FunctionApp()\n"
    "@app.route(route='ping')\n"
    "def ping(req: func.HttpRequest) -> str:\n"
    "    return 'pong'\n"
)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Run every failing start at once (each is a real process that imports the SDK, which
    takes a second or two; in parallel the whole module stays quick)."""
    root = tmp_path_factory.mktemp("cli")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy_port = taken.getsockname()[1]
    garbage_hub = root / "garbage.sqlite3"
    garbage_hub.write_text("not a database")
    bad_route = GOOD_APP.replace("route='ping'", "route='ping/{id:nosuch}'")
    cases: dict[str, list[str]] = {
        "help": ["--help"],
        "missing_folder": ["--app", str(root / "nope")],
        "no_function_app": ["--app", str(root)],
        "import_error": ["--app", str(_app(root, "import_error", IMPORT_ERROR_APP))],
        "no_app_object": ["--app", str(_app(root, "no_app_object", "x = 1\n"))],
        "broken_host_json": ["--app", str(_app(root, "broken_host_json", GOOD_APP, "{broken"))],
        "bad_hub_name": ["--app", str(_app(root, "bad_hub_name", GOOD_APP, BAD_HUB_JSON))],
        "bad_route": ["--app", str(_app(root, "bad_route", bad_route))],
        "port_in_use": ["--app", str(_app(root, "busy", GOOD_APP)), "--port", str(busy_port)],
        "invalid_port": ["--port", "99999"],
        "garbage_hub": [
            "--app",
            str(_app(root, "garbage_hub_app", GOOD_APP)),
            "--hub",
            str(garbage_hub),
        ],
        "commented_host_json": [
            "--app",
            str(_app(root, "commented", DURABLE_APP, '{"version": "2.0" /* note */}')),
        ],
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "durablehost", "start", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
        )
        for name, args in cases.items()
    }
    results = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=90)
            results[name] = Outcome(process.returncode, stdout, stderr)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        taken.close()
    yield results


IMPORT_ERROR_APP = "import azure.functions as func\n\nraise_me = 1 / 0\n"
DURABLE_APP = "import azure.durable_functions as df\napp = df.DFApp()\n"
BAD_HUB_JSON = '{"version": "2.0", "extensions": {"durableTask": {"hubName": "a-b"}}}'


def _assert_clean_failure(result: Outcome, *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_help_lists_the_options(outcomes: dict[str, Outcome]) -> None:
    assert outcomes["help"].returncode == 0
    for option in ("--app", "--host", "--port", "--hub", "--enforce-keys"):
        assert option in outcomes["help"].stdout


def test_missing_app_folder(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(outcomes["missing_folder"], "does not exist")


def test_folder_without_function_app(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(outcomes["no_function_app"], "function_app.py not found", "--app")


def test_app_that_fails_to_import_points_at_the_line(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(
        outcomes["import_error"], "ZeroDivisionError", "import_error/function_app.py:3"
    )


def test_module_without_function_app_object(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(outcomes["no_app_object"], "defines no FunctionApp")


def test_bad_host_json(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(outcomes["broken_host_json"], "host.json is not valid JSON")
    _assert_clean_failure(outcomes["bad_hub_name"], "hubName", "not a valid task hub name")


def test_host_json_comments_break_the_durable_sdk(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(outcomes["commented_host_json"], "has comments", "remove them")


def test_bad_route_template_names_the_function(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(outcomes["bad_route"], "function ping", "nosuch")


def test_port_in_use(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(outcomes["port_in_use"], "cannot listen on 127.0.0.1:", "--port")


def test_unusable_hub_file(outcomes: dict[str, Outcome]) -> None:
    _assert_clean_failure(outcomes["garbage_hub"], "cannot open the task hub", "--hub")


def test_invalid_port_option(outcomes: dict[str, Outcome]) -> None:
    assert outcomes["invalid_port"].returncode == 2
    assert "--port" in outcomes["invalid_port"].stderr
