"""How durablehost tells the two programming models apart and what it says about a v1
function it cannot load: the Functions host reports each broken function and runs the
rest; a folder in neither model, or with nothing loadable, is refused with exit code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from durablehost.app.loader import load_app
from durablehost.app.v1_loader import V1FunctionError, read_v1_function
from durablehost.errors import AppLoadError
from tests.support.hostproc import run_host_process

REPO = Path(__file__).resolve().parents[2]
BROKEN_APP = Path(__file__).parent / "apps" / "v1_broken"


def _function(
    app: Path, name: str, bindings: list[dict[str, Any]], files: dict[str, str], **extra: Any
) -> Path:
    folder = app / name
    folder.mkdir(parents=True)
    (folder / "function.json").write_text(json.dumps({"bindings": bindings, **extra}))
    for file_name, source in files.items():
        (folder / file_name).write_text(source)
    return folder


ACTIVITY = [{"name": "value", "type": "activityTrigger", "direction": "in"}]
ACTIVITY_SOURCE = "def main(value):\n    return value\n"
PING = [
    {"name": "req", "type": "httpTrigger", "direction": "in", "authLevel": "anonymous"},
    {"name": "$return", "type": "http", "direction": "out"},
]


def _start(app_dir: Path) -> subprocess.CompletedProcess[str]:
    """`python -m durablehost start` on an app expected to be refused before it serves."""
    return subprocess.run(
        [sys.executable, "-m", "durablehost", "start", "--app", str(app_dir), "--port", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
    )


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_broken_functions_are_reported_by_name_and_the_rest_run(tmp_path: Path) -> None:
    with run_host_process(BROKEN_APP, hub=tmp_path / "hub.sqlite3") as host:
        log = host.logs()
        expected = {
            "NoScript": "scriptFile 'missing.py' in NoScript/function.json does not exist",
            "NoEntry": "function run() is not present in NoEntry/__init__.py",
            "WrongParams": "declared in function.json but not in Python (__init__.py main()): "
            "['req']",
            "ImportFails": "importing ImportFails/__init__.py failed: KeyError: 'missing'",
            "NotAHandle": "main = df.Orchestrator.create(your_generator_function)",
            "BadJson": "BadJson/function.json is not valid JSON",
        }
        for name, message in expected.items():
            line = next(
                (line for line in log.splitlines() if f"Function '{name}' is in error" in line),
                "",
            )
            assert message in line, f"{name}: {line or log}"
        assert "ImportFails/__init__.py:3" in log  # the line of the failing import
        with httpx.Client(base_url=host.url, timeout=30) as http:
            assert http.get("/api/ping").text == "pong"
            assert http.get("/api/WrongParams").status_code == 404


@pytest.mark.e2e
def test_function_app_py_wins_over_function_json_folders(tmp_path: Path) -> None:
    app = tmp_path / "both"
    app.mkdir()
    (app / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='ping')\n"
        "def ping(req: func.HttpRequest) -> str:\n"
        "    return 'v2'\n"
    )
    _function(app, "Legacy", PING, {"__init__.py": "def main(req):\n    return 'v1'\n"})
    with run_host_process(app, hub=tmp_path / "hub.sqlite3") as host:
        assert "the function.json folders Legacy are ignored" in host.logs()
        with httpx.Client(base_url=host.url, timeout=30) as http:
            assert http.get("/api/ping").text == "v2"
            assert http.get("/api/Legacy").status_code == 404


@pytest.mark.e2e
def test_a_folder_in_neither_model_is_refused_saying_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no functions here")
    result = _start(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "function_app.py not found (the Python v2 decorator model)" in result.stderr
    assert "no subfolder has a function.json (the v1 model)" in result.stderr


@pytest.mark.e2e
def test_a_v1_app_with_nothing_loadable_is_refused(tmp_path: Path) -> None:
    _function(tmp_path, "Only", ACTIVITY, {}, scriptFile="gone.py")
    result = _start(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "no function of the v1 app" in result.stderr
    assert "Only: scriptFile 'gone.py'" in result.stderr


# -- the loader, in process --------------------------------------------------------------------


def test_the_folders_only_file_is_its_script(tmp_path: Path) -> None:
    folder = _function(tmp_path, "Single", ACTIVITY, {"handler.py": ACTIVITY_SOURCE})
    info = read_v1_function(folder, tmp_path)
    assert info is not None
    assert info.user_function.__module__ == "__app__.Single.handler"


@pytest.mark.parametrize(
    ("bindings", "files", "extra", "message"),
    [
        ([], {"__init__.py": ACTIVITY_SOURCE}, {}, "at least one binding must be declared"),
        (
            [{"name": "out", "type": "queue", "direction": "out"}],
            {"__init__.py": "def main(out):\n    pass\n"},
            {},
            "declares no trigger binding",
        ),
        (
            [*ACTIVITY, {"name": "req", "type": "httpTrigger", "direction": "in"}],
            {"__init__.py": "def main(value, req):\n    pass\n"},
            {},
            "declares 2 trigger bindings",
        ),
        (ACTIVITY, {"a.py": "", "b.py": ""}, {}, "has no __init__.py"),
        (ACTIVITY, {"main.js": ""}, {}, "main.js is not a Python script"),
        (ACTIVITY, {}, {"scriptFile": "../../outside.py"}, "outside the app folder"),
        (
            ACTIVITY,
            {"__init__.py": "def main(value, extra):\n    pass\n"},
            {},
            "declared in Python (__init__.py main()) but not in function.json: ['extra']",
        ),
        (
            [{"name": "value", "direction": "in"}],
            {"__init__.py": ACTIVITY_SOURCE},
            {},
            "bindings[0] needs a 'type' string",
        ),
        (
            [{**ACTIVITY[0], "direction": "sideways"}],
            {"__init__.py": ACTIVITY_SOURCE},
            {},
            "direction must be 'in', 'out' or 'inout'",
        ),
        (
            [{"name": "t", "type": "timerTrigger", "direction": "in"}],
            {"__init__.py": "def main(t):\n    pass\n"},
            {},
            "a timerTrigger needs a 'schedule' string",
        ),
    ],
)
def test_a_broken_function_json_says_what_to_fix(
    tmp_path: Path,
    bindings: list[dict[str, Any]],
    files: dict[str, str],
    extra: dict[str, Any],
    message: str,
) -> None:
    (tmp_path.parent / "outside.py").write_text(ACTIVITY_SOURCE)
    folder = _function(tmp_path, "Broken", bindings, files, **extra)
    with pytest.raises(V1FunctionError) as raised:
        read_v1_function(folder, tmp_path)
    assert message in str(raised.value)


def test_a_name_the_functions_host_refuses(tmp_path: Path) -> None:
    folder = _function(tmp_path, "1st-step", ACTIVITY, {"__init__.py": ACTIVITY_SOURCE})
    with pytest.raises(V1FunctionError, match="'1st-step' is not a valid function name"):
        read_v1_function(folder, tmp_path)


def test_bindings_read_like_the_v2_decorators(tmp_path: Path) -> None:
    source = "def main(req, starter, context):\n    pass\n"
    bindings = [
        {
            "name": "req",
            "type": "HttpTrigger",
            "direction": "in",
            "authLevel": "Function",
            "route": "items/{id:int}",
            "methods": ["GET", "post"],
        },
        {"name": "starter", "type": "orchestrationClient", "direction": "in", "taskHub": "Hub"},
        {"name": "$return", "type": "http", "direction": "out"},
    ]
    folder = _function(tmp_path, "Items", bindings, {"__init__.py": source})
    info = read_v1_function(folder, tmp_path)
    assert info is not None
    assert info.trigger_type == "httpTrigger"
    assert (info.trigger.route, info.trigger.methods, info.trigger.auth_level) == (
        "items/{id:int}",
        ("get", "post"),
        "function",
    )
    client = info.binding_of_type("durableClient")
    assert client is not None
    assert (client.declared_type, client.task_hub) == ("orchestrationClient", "Hub")
    # Properties without a named field read under their v2 (snake_case) names.
    assert client.task_hub == "Hub"
    assert not hasattr(info.trigger, "queue_name")


def test_load_app_without_either_model_raises(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match="holds no Function App"):
        load_app(tmp_path)
