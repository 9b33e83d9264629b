"""Fixtures for the infra tests: the parsed Bicep templates and the deployable package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.package_build import DeployablePackage, build_deployable_package

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout the tests run from."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def deployable_package(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[DeployablePackage]:
    """The repo minus .funcignore, in a temp dir, with a clean venv holding requirements.txt.

    Built once per session: creating the venv and installing is the slow part. The venv is
    kept in pytest's cache keyed by requirements.txt and the Python version, so reruns skip
    the install; the package files themselves are copied afresh every session.
    """
    cache = getattr(pytestconfig, "cache", None)  # absent under -p no:cacheprovider
    venv_cache = cache.mkdir("infra-clean-venvs") if cache is not None else None
    yield build_deployable_package(
        REPO_ROOT, tmp_path_factory.mktemp("deployable"), venv_cache=venv_cache
    )
