"""The deployable package: the repo minus .funcignore, with a clean venv of requirements.txt.

This is what `func azure functionapp publish` and `azd deploy` upload and what the remote
build installs, rebuilt locally so tests can import and index it the way Azure will.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

__all__ = [
    "DeployablePackage",
    "build_deployable_package",
    "funcignore_spec",
    "interpreter_version",
    "package_files",
    "run_probe",
]

PROBE = Path(__file__).with_name("package_probe.py")
PROBE_MARKER = "PACKAGE-PROBE-RESULT"
VENV_READY = ".clean-venv-ready"
# pip and venv creation on 2 shared cores; generous, but a hang still ends.
INSTALL_TIMEOUT_SECONDS = 600
PROBE_TIMEOUT_SECONDS = 120


def funcignore_spec(repo_root: Path) -> pathspec.GitIgnoreSpec:
    """The .funcignore rules (gitignore syntax, as Core Tools and azd read them)."""
    lines = (repo_root / ".funcignore").read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def package_files(repo_root: Path) -> list[Path]:
    """Files of the repo that .funcignore keeps, relative to the repo root."""
    spec = funcignore_spec(repo_root)
    kept: list[Path] = []
    for directory, subdirs, files in os.walk(repo_root):
        relative_dir = Path(directory).relative_to(repo_root)
        # Prune ignored folders instead of walking .venv/ and node_modules/ file by file.
        subdirs[:] = sorted(
            name for name in subdirs if not spec.match_file(f"{(relative_dir / name).as_posix()}/")
        )
        for name in sorted(files):
            relative = relative_dir / name
            if not spec.match_file(relative.as_posix()):
                kept.append(relative)
    return kept


@dataclass(frozen=True, slots=True)
class DeployablePackage:
    """The package folder and the interpreter of its clean venv."""

    root: Path
    python: Path
    files: tuple[Path, ...]


def _run(command: list[str], *, what: str, cwd: Path | None = None, timeout: float) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_environment(),
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result.stdout


def _clean_environment() -> dict[str, str]:
    # Nothing of the dev venv may leak into the clean one.
    leaking = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE"}
    return {name: value for name, value in os.environ.items() if name not in leaking}


def _create_clean_venv(requirements: Path, venv: Path, base_python: Path) -> Path:
    if venv.exists():
        shutil.rmtree(venv)
    # --without-pip and the dev venv's pip pointed at it (--python): faster than ensurepip,
    # and the clean venv ends up holding requirements.txt and nothing else, not even pip.
    _run(
        [str(base_python), "-m", "venv", "--without-pip", str(venv)],
        what="venv creation",
        timeout=120,
    )
    python = venv / "bin" / "python"
    # pip's own cache (~/.cache/pip) is kept, so a rebuild downloads nothing it has seen.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "-r",
            str(requirements),
        ],
        what="pip install -r requirements.txt in a clean venv",
        timeout=INSTALL_TIMEOUT_SECONDS,
    )
    (venv / VENV_READY).write_text(requirements.read_text(encoding="utf-8"), encoding="utf-8")
    return python


def interpreter_version(python: Path) -> str:
    """The full version line of an interpreter (sys.version), e.g. '3.12.1 (main, ...) [GCC]'."""
    return _run(
        [str(python), "-c", "import sys; print(sys.version)"], what="interpreter probe", timeout=60
    ).strip()


def build_deployable_package(
    repo_root: Path,
    workdir: Path,
    *,
    venv_cache: Path | None = None,
    base_python: Path | None = None,
) -> DeployablePackage:
    """Copy the repo minus .funcignore into workdir and give it a clean venv.

    base_python makes the venv (default: the interpreter running the tests), so the package
    can be checked on the Python version Azure runs. With venv_cache, the venv lives there
    under a key of requirements.txt and that interpreter's version and is reused while both
    are unchanged; only requirements.txt is ever installed in it, so reuse keeps it clean.
    """
    base = base_python or Path(sys.executable)
    root = workdir / "package"
    files = package_files(repo_root)
    for relative in files:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root / relative, target)

    requirements = root / "requirements.txt"
    version = sys.version if base_python is None else interpreter_version(base)
    key = hashlib.sha256(requirements.read_bytes() + version.encode()).hexdigest()[:16]
    venv = (venv_cache or workdir) / f"venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / VENV_READY).exists() or not python.exists():
        python = _create_clean_venv(requirements, venv, base)
    return DeployablePackage(root=root, python=python, files=tuple(files))


def run_probe(python: Path, package_root: Path, mode: str) -> Any:
    """Run package_probe.py with an interpreter against a package folder; its JSON result."""
    stdout = _run(
        # -I: no user site, no PYTHON* variables, no script dir on sys.path; the probe adds
        # the package root itself, as the worker does.
        [str(python), "-I", str(PROBE), str(package_root), mode],
        what=f"package probe ({mode})",
        cwd=package_root,
        timeout=PROBE_TIMEOUT_SECONDS,
    )
    for line in reversed(stdout.splitlines()):
        if line.startswith(PROBE_MARKER):
            return json.loads(line.removeprefix(PROBE_MARKER))
    raise AssertionError(f"package probe ({mode}) printed no result:\n{stdout[-4000:]}")
