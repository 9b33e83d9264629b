"""The Bicep templates under infra/, read with a real Bicep grammar (pycep-parser).

No Bicep compiler can be installed here (it ships outside the package registries), so the
templates are parsed rather than compiled: a syntax error still fails, and the checks walk
the parsed tree (resources, modules, parameters) instead of matching text.

pycep renders expressions as JSON: a bare string is either a literal or a symbol (the
grammar keeps no difference once parsed), and `a.b.c` is a nested `property_accessor`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

__all__ = [
    "BicepTemplate",
    "InfraTemplates",
    "Resource",
    "accessor_path",
    "load_infra",
    "mentions",
    "unwrap_loop",
]

Expression = Any
"""A parsed Bicep expression: a str, number, bool, None, list, dict or operator/function node."""


def accessor_path(expression: Expression) -> tuple[str, ...] | None:
    """`identity.outputs.principalId` as ('identity', 'outputs', 'principalId'); None otherwise."""
    if isinstance(expression, str):
        return (expression,)
    if not isinstance(expression, Mapping) or "operator" not in expression:
        return None
    operator = expression["operator"]
    if operator.get("type") != "property_accessor":
        return None
    head = accessor_path(operator["operands"]["operand_1"])
    tail = accessor_path(operator["operands"]["operand_2"])
    if head is None or tail is None:
        return None
    return head + tail


def mentions(expression: Expression, symbol: str) -> bool:
    """True when a symbol appears anywhere in an expression."""
    if isinstance(expression, str):
        return expression == symbol
    if isinstance(expression, Mapping):
        return any(mentions(value, symbol) for value in expression.values())
    if isinstance(expression, list):
        return any(mentions(value, symbol) for value in expression)
    return False


def unwrap_loop(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The body of a resource or module, without its `[for ...]` or `if (...)` wrapper."""
    if "loop_type" in body or "condition" in body:
        inner: Mapping[str, Any] = body["config"]
        return inner
    return body


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource declaration: its symbolic name, type and body (loop unwrapped)."""

    symbol: str
    type: str
    existing: bool
    body: Mapping[str, Any]
    loop_item: str | None = None
    """The loop variable of `[for <item> in <source>: ...]`, None when not a loop."""
    loop_source: Expression = None
    """What the loop iterates over."""

    @property
    def properties(self) -> Mapping[str, Any]:
        """The resource's `properties` object ({} when it has none)."""
        return self.body.get("properties") or {}


@dataclass(frozen=True, slots=True)
class BicepTemplate:
    """One parsed .bicep file."""

    path: Path
    tree: Mapping[str, Any]

    def resources(self, resource_type: str) -> list[Resource]:
        """Resources of one type (e.g. 'Microsoft.Web/sites/config'), nested ones included."""
        return [resource for resource in self.all_resources() if resource.type == resource_type]

    def resource(self, resource_type: str) -> Resource:
        """The single resource of a type; fails the test when there are none or several."""
        found = self.resources(resource_type)
        assert len(found) == 1, f"{self.path.name}: expected one {resource_type}, found {found}"
        return found[0]

    def all_resources(self) -> Iterator[Resource]:
        """Every resource declaration in the file."""
        for symbol, declaration in (self.tree.get("resources") or {}).items():
            loop = declaration["config"].get("loop_type") or {}
            detail = loop.get("detail") or {}
            yield Resource(
                symbol=symbol,
                type=declaration["type"],
                existing=bool(declaration.get("existing")),
                body=unwrap_loop(declaration["config"]),
                loop_item=detail.get("item_name"),
                loop_source=detail.get("array_name"),
            )

    def resource_by_symbol(self, symbol: str) -> Resource:
        """The resource declared as `resource <symbol> ...`."""
        for resource in self.all_resources():
            if resource.symbol == symbol:
                return resource
        raise AssertionError(f"{self.path.name}: no resource named {symbol!r}")

    @property
    def parameters(self) -> Mapping[str, Mapping[str, Any]]:
        """Parameter declarations by name (type, default, decorators)."""
        return self.tree.get("parameters") or {}

    @property
    def variables(self) -> Mapping[str, Any]:
        """Variable values by name."""
        return {name: var["value"] for name, var in (self.tree.get("variables") or {}).items()}

    @property
    def modules(self) -> Mapping[str, Mapping[str, Any]]:
        """Module declarations by symbolic name."""
        return self.tree.get("modules") or {}

    def module_path(self, symbol: str) -> str:
        """The file a module declaration points at, relative to this file."""
        return str(self.modules[symbol]["detail"]["path"])

    def module_body(self, symbol: str) -> Mapping[str, Any]:
        """The module's body (name, scope, params, dependsOn), loop or condition unwrapped."""
        return unwrap_loop(self.modules[symbol]["config"])

    def module_is_conditional(self, symbol: str) -> bool:
        """True when the module is declared with `if (...)`."""
        return "condition" in self.modules[symbol]["config"]

    def module_argument(self, symbol: str, parameter: str) -> Expression:
        """The expression passed to one module parameter."""
        params = self.module_body(symbol).get("params") or {}
        assert parameter in params, f"{self.path.name}: module {symbol} gets no {parameter}"
        return params[parameter]

    def modules_using(self, relative_path: str) -> list[str]:
        """Symbols of the modules declared from one file."""
        return [symbol for symbol in self.modules if self.module_path(symbol) == relative_path]


@dataclass(frozen=True, slots=True)
class InfraTemplates:
    """main.bicep and every module file it can reach, parsed."""

    root: Path
    files: Mapping[str, BicepTemplate]

    @property
    def main(self) -> BicepTemplate:
        """infra/main.bicep."""
        return self.files["main.bicep"]

    def module(self, relative_path: str) -> BicepTemplate:
        """A module file by its path relative to infra/ (e.g. 'modules/storage.bicep')."""
        assert relative_path in self.files, f"infra/{relative_path} is missing"
        return self.files[relative_path]


def load_infra(infra_dir: Path) -> InfraTemplates:
    """Parse every .bicep file under infra_dir; a syntax error raises with the file named."""
    parser = BicepParser()
    files: dict[str, BicepTemplate] = {}
    for path in sorted(infra_dir.rglob("*.bicep")):
        try:
            tree = parser.parse(file_path=path)
        except Exception as error:  # lark raises several unrelated classes for bad syntax
            raise AssertionError(f"{path} is not valid Bicep: {error}") from error
        files[path.relative_to(infra_dir).as_posix()] = BicepTemplate(path=path, tree=tree)
    return InfraTemplates(root=infra_dir, files=files)
