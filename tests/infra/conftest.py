"""Fixtures for the infra tests: the deployable package and its clean venv."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.package_build import DeployablePackage, build_deployable_package

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout the tests run from."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def clean_venv_cache(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where clean venvs are kept, keyed by requirements.txt and the Python version.

    Creating the venv and installing is the slow part, so it is done once and reused while
    requirements.txt is unchanged (pytest's cache dir; a temp dir under -p no:cacheprovider).
    Only requirements.txt is ever installed in one, so reuse keeps it clean.
    """
    cache = getattr(pytestconfig, "cache", None)
    if cache is None:
        return tmp_path_factory.mktemp("clean-venvs")
    return cache.mkdir("infra-clean-venvs")


@pytest.fixture(scope="session")
def deployable_package(
    tmp_path_factory: pytest.TempPathFactory, clean_venv_cache: Path
) -> DeployablePackage:
    """The repo minus .funcignore, copied afresh, with a clean venv of requirements.txt."""
    return build_deployable_package(
        REPO_ROOT, tmp_path_factory.mktemp("deployable"), venv_cache=clean_venv_cache
    )
