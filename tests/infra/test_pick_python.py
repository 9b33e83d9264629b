"""scripts/pick_python.py (what `make` creates .venv with) names a CPython >= 3.11 that
can make a venv, and leaves out a candidate whose probe fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pick_python.py"


def test_it_names_a_python_that_can_make_a_venv() -> None:
    picked = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert picked, "no interpreter printed"
    probe = subprocess.run(
        [picked, "-c", "import sys, ensurepip, venv; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "True"


def test_a_candidate_whose_probe_fails_is_left_out(tmp_path: Path) -> None:
    # The probe exits 3 on a Python older than 3.11 and fails without ensurepip (a
    # Debian Python without python3-venv); a stand-in that exits 3 is such a candidate.
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import pick_python
    finally:
        sys.path.remove(str(SCRIPT.parent))
    fake = tmp_path / "python3.10"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'raise SystemExit(3)' \"$@\"\n")
    fake.chmod(0o755)
    assert pick_python._time(str(fake)) is None
    assert pick_python._time(sys.executable) is not None
