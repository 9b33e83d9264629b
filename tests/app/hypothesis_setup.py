"""Hypothesis settings shared by the fuzzing tests, and its storage kept out of the tree.

Importing this module points Hypothesis' storage (example database, Unicode tables, the
constants it collects from source files during test collection) at a temporary
directory, unless HYPOTHESIS_STORAGE_DIRECTORY names one: the hypothesis pytest plugin
writes `.hypothesis/` into the working directory at collection time otherwise, before any
fixture could redirect it. Test modules import it before they define any @given test.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

__all__ = ["BOUNDED", "HYPOTHESIS_HOME"]

HYPOTHESIS_HOME: Final = Path(
    os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
    or Path(tempfile.gettempdir()) / f"durable-ops-hypothesis-{os.getuid()}"
)
set_hypothesis_home_dir(HYPOTHESIS_HOME)

# Reproducible (derandomize: the same examples every run) and with no example database,
# so a failure found once is not silently replayed from a file somewhere.
BOUNDED: Final = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
