"""The package on the Python version Azure runs it with (infra: Flex Consumption, Python 3.12).

The other package tests use the interpreter running the tests (the dev venv's, 3.11 or
newer). These build the same clean venv of requirements.txt with a CPython 3.12 found on the
machine (never downloaded at test time) and import and index function_app with it. Where no
3.12 exists, they skip saying so; the e2e test below still checks, against PyPI, that every
pinned requirement has a CPython 3.12 manylinux wheel, which is what the Linux remote build
installs.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.package_build import (
    DeployablePackage,
    build_deployable_package,
    interpreter_version,
    run_probe,
)

AZURE_PYTHON = (3, 12)
PYPI_HOST = "pypi.org"


def _candidates() -> list[str]:
    # PATH first, then the distribution's and pyenv's installs (pyenv's shims only answer
    # when a version is selected, so the versions folder is searched too).
    found = [shutil.which("python3.12"), "/usr/bin/python3.12", "/usr/local/bin/python3.12"]
    found += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    return [path for path in found if path and os.access(path, os.X_OK)]


def _is_python312_with_venv(path: str) -> bool:
    probe = subprocess.run(
        [path, "-c", "import sys, venv; raise SystemExit(sys.version_info[:2] != (3, 12))"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture(scope="session")
def python312() -> Path:
    """A CPython 3.12 that can make a venv; the test skips when the machine has none."""
    for candidate in _candidates():
        if _is_python312_with_venv(candidate):
            return Path(candidate)
    pytest.skip(
        "no CPython 3.12 with venv on this machine (looked on PATH, /usr/bin, /usr/local/bin "
        "and ~/.pyenv/versions/3.12*); test_pinned_requirements_have_cpython_312_wheels still "
        "checks the requirements against PyPI"
    )


@pytest.fixture(scope="session")
def package312(
    python312: Path, tmp_path_factory: pytest.TempPathFactory, clean_venv_cache: Path
) -> DeployablePackage:
    """The deployable package with a clean venv made by CPython 3.12."""
    return build_deployable_package(
        Path(__file__).resolve().parents[2],
        tmp_path_factory.mktemp("deployable312"),
        venv_cache=clean_venv_cache,
        base_python=python312,
    )


def test_clean_venv_runs_python_312(package312: DeployablePackage) -> None:
    assert interpreter_version(package312.python).startswith("3.12.")


def test_python_312_resolves_every_import_of_the_package(package312: DeployablePackage) -> None:
    result = run_probe(package312.python, package312.root, "imports")
    unresolved = [f"{item['module']} ({item['where']})" for item in result["unresolved"]]
    assert not unresolved, f"on Python 3.12 these imports do not resolve: {unresolved}"


def test_python_312_imports_function_app_and_indexes_every_function(
    package312: DeployablePackage, repo_root: Path
) -> None:
    indexed = run_probe(package312.python, package312.root, "index")["functions"]
    in_repo = run_probe(Path(sys.executable), repo_root, "index")["functions"]
    assert sorted(f["name"] for f in indexed) == sorted(f["name"] for f in in_repo)
    assert all(function["trigger"] for function in indexed)


def _pypi_reachable() -> bool:
    try:
        with socket.create_connection((PYPI_HOST, 443), timeout=5):
            return True
    except OSError:
        return False


@pytest.mark.e2e
def test_pinned_requirements_have_cpython_312_wheels(repo_root: Path, tmp_path: Path) -> None:
    # What the Flex Consumption remote build installs: Linux x86-64, CPython 3.12, and only
    # wheels, so a pin without one (a source build there) fails here instead of in Azure.
    if not _pypi_reachable():
        pytest.skip(f"{PYPI_HOST} is unreachable: cannot ask PyPI for CPython 3.12 wheels")
    major, minor = AZURE_PYTHON
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            f"{major}.{minor}",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            "-r",
            str(repo_root / "requirements.txt"),
            "-d",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"a pinned requirement has no CPython {major}.{minor} Linux wheel:\n{result.stderr[-3000:]}"
    )
    wheels = sorted(path.name for path in tmp_path.glob("*.whl"))
    assert any(name.startswith("azure_functions-") for name in wheels), wheels
    compiled = [name for name in wheels if "-cp" in name and "abi3" not in name]
    assert all(f"-cp{major}{minor}-" in name for name in compiled), compiled
