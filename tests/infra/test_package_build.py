"""The package check itself: on small made-up repos, a broken package fails with a message
that names the cause, and a sound one indexes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.infra.package_build import build_deployable_package, package_files, run_probe

FUNCIGNORE = "opsclient/\ntests/\n.venv/\n"
HTTP_APP = """\
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="ping")
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
"""


def _made_up_repo(root: Path, repo_root: Path, function_app: str) -> Path:
    root.mkdir()
    # The real requirements.txt, so the cached clean venv is reused.
    shutil.copy(repo_root / "requirements.txt", root / "requirements.txt")
    (root / "host.json").write_text('{"version": "2.0"}\n')
    (root / ".funcignore").write_text(FUNCIGNORE)
    (root / "function_app.py").write_text(function_app)
    (root / "opsclient").mkdir()
    (root / "opsclient" / "__init__.py").write_text("")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    return root


def test_package_files_follow_funcignore(tmp_path: Path, repo_root: Path) -> None:
    repo = _made_up_repo(tmp_path / "repo", repo_root, HTTP_APP)
    kept = {path.as_posix() for path in package_files(repo)}
    assert kept == {".funcignore", "function_app.py", "host.json", "requirements.txt"}


def test_sound_package_indexes_its_functions(
    tmp_path: Path, repo_root: Path, clean_venv_cache: Path
) -> None:
    repo = _made_up_repo(tmp_path / "repo", repo_root, HTTP_APP)
    package = build_deployable_package(repo, tmp_path / "work", venv_cache=clean_venv_cache)
    functions = run_probe(package.python, package.root, "index")["functions"]
    assert [(f["name"], f["trigger"]) for f in functions] == [("ping", "httpTrigger")]


def test_package_importing_an_excluded_folder_fails_naming_it(
    tmp_path: Path, repo_root: Path, clean_venv_cache: Path
) -> None:
    app = "import opsclient\n" + HTTP_APP
    repo = _made_up_repo(tmp_path / "repo", repo_root, app)
    package = build_deployable_package(repo, tmp_path / "work", venv_cache=clean_venv_cache)
    with pytest.raises(
        AssertionError, match=r"No module named 'opsclient' \(at function_app.py:1\)"
    ):
        run_probe(package.python, package.root, "index")
    unresolved = run_probe(package.python, package.root, "imports")["unresolved"]
    assert unresolved == [{"module": "opsclient", "where": "function_app.py:1"}]


def test_package_importing_a_dev_dependency_lazily_is_caught_by_the_import_scan(
    tmp_path: Path, repo_root: Path, clean_venv_cache: Path
) -> None:
    # Importing function_app succeeds: the import only runs when a request comes in.
    app = HTTP_APP + "\n\ndef later() -> None:\n    import httpx  # noqa: F401\n"
    repo = _made_up_repo(tmp_path / "repo", repo_root, app)
    package = build_deployable_package(repo, tmp_path / "work", venv_cache=clean_venv_cache)
    assert run_probe(package.python, package.root, "index")["functions"]
    unresolved = run_probe(package.python, package.root, "imports")["unresolved"]
    assert [item["module"] for item in unresolved] == ["httpx"]
