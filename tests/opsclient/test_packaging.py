"""The package carries opsclient/py.typed (PEP 561), so users' type checkers see its types.

Built with setuptools' own build_py from pyproject.toml (the venv has no `wheel` for a full
bdist_wheel), into a temporary directory: what it copies is what a wheel would hold.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_built_package_contains_py_typed(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "--quiet",
            "egg_info",
            "--egg-base",
            str(tmp_path),
            "build_py",
            "--build-lib",
            str(tmp_path / "lib"),
        ],
        check=True,
        timeout=300,
        cwd=REPO,
        capture_output=True,
    )
    built = tmp_path / "lib" / "opsclient"
    assert (built / "py.typed").is_file()
    assert (built / "final_state.py").is_file()
    sources = (tmp_path / "durable_ops.egg-info" / "SOURCES.txt").read_text().splitlines()
    assert "opsclient/py.typed" in sources
