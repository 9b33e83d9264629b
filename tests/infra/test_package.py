"""The deployable package: what .funcignore leaves in, what requirements.txt installs, and
whether that alone imports function_app and indexes every function, as Azure will.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from operations.settings import SETTINGS
from tests.infra.package_build import (
    DeployablePackage,
    funcignore_spec,
    package_files,
    run_probe,
)

DEV_ONLY_FOLDERS = (
    "durablehost/",
    "opsclient/",
    "tests/",
    "bench/",
    "infra/",
    "docs/",
    "node_modules/",
    ".venv/",
    ".durablehost/",
    ".azurite/",
)
APP_FILES = ("function_app.py", "host.json", "requirements.txt", "operations/settings.py")
# Never run-time dependencies, whatever imports them.
DEV_TOOLS = re.compile(r"^(pytest.*|ruff|mypy|types-.*|coverage|black|flake8|pylint|pycep-parser)$")
SETTING_READERS = {"get_setting", "get_int", "get_float", "getenv"}


def _settings_read(path: Path) -> list[tuple[str, int]]:
    """Names passed as string literals to get_setting/get_int/get_float, os.getenv,
    os.environ.get and os.environ[...] in one file."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        name: ast.expr | None = None
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            called = function.id if isinstance(function, ast.Name) else None
            if isinstance(function, ast.Attribute):
                called = function.attr
                if called == "get" and ast.unparse(function.value).endswith("environ"):
                    called = "getenv"
            if called in SETTING_READERS:
                name = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
            name = node.slice
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            found.append((name.value, name.lineno))
    return found


def _requirements(repo_root: Path) -> list[Requirement]:
    lines = (repo_root / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in (raw.split("#", 1)[0].strip() for raw in lines) if line]


def _dev_dependencies(repo_root: Path) -> set[str]:
    project = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        declared.extend(extra)
    return {str(canonicalize_name(Requirement(spec).name)) for spec in declared}


@pytest.mark.parametrize("folder", DEV_ONLY_FOLDERS)
def test_funcignore_leaves_out_dev_only_folders(repo_root: Path, folder: str) -> None:
    spec = funcignore_spec(repo_root)
    assert spec.match_file(folder), f".funcignore does not leave out {folder}"
    assert spec.match_file(f"{folder}some/file.py"), f".funcignore keeps files in {folder}"


def test_funcignore_keeps_the_app(repo_root: Path) -> None:
    spec = funcignore_spec(repo_root)
    dropped = [name for name in APP_FILES if spec.match_file(name)]
    assert not dropped, f".funcignore leaves out app files: {dropped}"
    kept = {path.as_posix() for path in package_files(repo_root)}
    assert {"host.json", "requirements.txt"} <= kept
    leaked = sorted(path for path in kept if path.startswith(DEV_ONLY_FOLDERS))
    assert not leaked, f"dev-only files in the package: {leaked[:10]}"


def test_every_setting_the_package_reads_is_declared(repo_root: Path) -> None:
    # The infra tests check operations/settings.py against Bicep; a setting read elsewhere
    # would escape that check.
    declared = {setting.name for setting in SETTINGS}
    undeclared = [
        f"{name} ({path.as_posix()}:{line})"
        for path in package_files(repo_root)
        if path.suffix == ".py"
        for name, line in _settings_read(repo_root / path)
        if name not in declared
    ]
    assert not undeclared, f"settings read but not declared in operations/settings.py: {undeclared}"


def test_requirements_are_pinned_and_hold_no_dev_tools(repo_root: Path) -> None:
    for requirement in _requirements(repo_root):
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"requirements.txt: pin {requirement.name} to one exact version"
        )
        assert not DEV_TOOLS.match(canonicalize_name(requirement.name)), (
            f"requirements.txt holds the dev tool {requirement.name}"
        )


def test_clean_venv_resolves_every_import_of_the_package(
    deployable_package: DeployablePackage,
) -> None:
    result = run_probe(deployable_package.python, deployable_package.root, "imports")
    unresolved = [f"{item['module']} ({item['where']})" for item in result["unresolved"]]
    assert not unresolved, (
        "the package imports modules that requirements.txt does not install, or that "
        f".funcignore leaves out (durablehost/opsclient are dev-only): {unresolved}"
    )


def test_requirements_hold_only_what_the_app_imports(
    deployable_package: DeployablePackage, repo_root: Path
) -> None:
    result: dict[str, Any] = run_probe(
        deployable_package.python, deployable_package.root, "imports"
    )
    used = {
        str(canonicalize_name(name)): modules
        for name, modules in result["used_by_requirement"].items()
    }
    # durablehost/opsclient dependencies (aiohttp, click, httpx, rich, ...) belong in
    # pyproject.toml unless the app itself imports them.
    dev_only = sorted(name for name in _dev_dependencies(repo_root) & set(used) if not used[name])
    assert not dev_only, f"requirements.txt holds dev-only dependencies: {dev_only}"
    unused = sorted(name for name, modules in used.items() if not modules)
    assert not unused, (
        f"requirements.txt installs packages the app never imports: {unused}. "
        "Azure installs every line; keep it to the app's run-time dependencies."
    )


def test_package_imports_function_app_and_indexes_every_function_in_a_clean_venv(
    deployable_package: DeployablePackage, repo_root: Path
) -> None:
    indexed = run_probe(deployable_package.python, deployable_package.root, "index")["functions"]
    assert indexed, "function_app.py registers no function"
    without_trigger = [function["name"] for function in indexed if not function["trigger"]]
    assert not without_trigger, f"functions without a trigger: {without_trigger}"
    # The dev environment (everything installed, whole repo) indexes the same functions, so
    # nothing the app needs was left out of the package.
    in_repo = run_probe(Path(sys.executable), repo_root, "index")["functions"]
    assert sorted(f["name"] for f in indexed) == sorted(f["name"] for f in in_repo)
