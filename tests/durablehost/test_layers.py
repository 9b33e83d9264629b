"""durablehost's layers import only downward (see durablehost/__init__.py).

Read from the source with `ast`, without importing anything, so an upward import fails
here even when it is lazy (inside a function) or only for type checking.
"""

from __future__ import annotations

import ast
from pathlib import Path

import durablehost

PACKAGE = Path(durablehost.__file__).parent

# What each layer may import besides itself and durablehost.errors, bottom to top.
ALLOWED: dict[str, frozenset[str]] = {
    "model": frozenset(),
    "wire": frozenset({"model"}),
    "store": frozenset({"model", "wire"}),
    "app": frozenset(),
    "workers": frozenset({"app"}),
    "engine": frozenset({"model", "wire", "store", "app"}),
    "front": frozenset({"model", "wire", "app"}),
    "triggers": frozenset({"model", "wire", "store", "app"}),
}

# The top level composes the layers; every other module belongs in one of them.
COMPOSITION = {"__init__", "__main__", "cli", "errors", "host", "process", "testing", "tuning"}


def layer_of(module: str) -> str:
    """`durablehost.engine.episodes` -> `engine`; a top-level module is its own name."""
    return module.split(".")[1]


def durablehost_imports(path: Path) -> set[str]:
    """Every durablehost module or package that `path` imports, at any depth of its code."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return {name for name in imported if name.startswith("durablehost.")}


def modules() -> list[tuple[str, Path]]:
    return [
        (".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts), path)
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_every_module_sits_in_a_layer_or_composes_them() -> None:
    stray = [
        module
        for module, path in modules()
        if path.parent == PACKAGE and path.stem not in COMPOSITION
    ]
    assert stray == [], f"put these in a layer subpackage ({', '.join(ALLOWED)}): {stray}"
    assert {path.parent.name for _, path in modules() if path.parent != PACKAGE} == set(ALLOWED)


def test_layers_import_only_downward() -> None:
    upward = []
    for module, path in modules():
        layer = layer_of(module)
        if layer not in ALLOWED:
            continue  # the composition may import every layer
        allowed = ALLOWED[layer] | {layer, "errors"}
        upward += [
            f"{module} imports {target}"
            for target in sorted(durablehost_imports(path))
            if layer_of(target) not in allowed
        ]
    assert upward == []


def test_every_layer_says_what_it_is_and_may_import() -> None:
    for layer in ALLOWED:
        docstring = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert docstring and "import" in docstring, f"durablehost/{layer}/__init__.py"
