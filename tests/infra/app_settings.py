"""The Function App's app settings as infra/modules/function-app.bicep sets them, per backend.

The template keeps the settings in two variables and picks them with one condition:

    properties: useDurableTaskScheduler
        ? union(commonAppSettings, durableTaskSchedulerAppSettings) : commonAppSettings

This module follows that expression in the parsed tree, so the tests see exactly what each
durableBackend deploys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.infra.bicep_templates import BicepTemplate, Expression

__all__ = ["BACKENDS", "FUNCTION_APP", "app_settings_for_backend", "backend_condition"]

FUNCTION_APP = "modules/function-app.bicep"
BACKENDS = ("azureStorage", "durableTaskScheduler")


def _as_object(template: BicepTemplate, expression: Expression) -> dict[str, Any]:
    """An object literal, a variable holding one, or union() of those, as name -> value."""
    if isinstance(expression, str):
        assert expression in template.variables, f"{expression!r} is not a variable"
        return _as_object(template, template.variables[expression])
    assert isinstance(expression, Mapping), f"not an object: {expression!r}"
    function = expression.get("function")
    if function is not None:
        assert function["type"] == "union", f"unexpected function {function['type']}"
        merged: dict[str, Any] = {}
        for argument in function["parameters"].values():
            merged.update(_as_object(template, argument))
        return merged
    return {name.strip("'"): value for name, value in expression.items()}


def _settings_expression(template: BicepTemplate) -> Expression:
    config = [
        resource
        for resource in template.resources("Microsoft.Web/sites/config")
        if resource.body.get("name") == "appsettings"
    ]
    assert len(config) == 1, "function-app.bicep must declare exactly one appsettings config"
    return config[0].body["properties"]


def backend_condition(template: BicepTemplate) -> Expression:
    """The expression the settings depend on (a symbol), after checking it is the backend test."""
    expression = _settings_expression(template)
    conditional = expression["operator"]
    assert conditional["type"] == "conditional", "appsettings should pick settings per backend"
    condition = conditional["operands"]["condition"]
    assert template.variables[condition] == {
        "operator": {
            "type": "equals",
            "operands": {"operand_1": "durableBackend", "operand_2": "durableTaskScheduler"},
        }
    }, f"{condition} should be durableBackend == 'durableTaskScheduler'"
    return condition


def app_settings_for_backend(template: BicepTemplate, backend: str) -> dict[str, Any]:
    """The app settings (name -> Bicep expression) the Function App gets with one backend."""
    assert backend in BACKENDS
    expression = _settings_expression(template)
    if "operator" not in expression:
        return _as_object(template, expression)
    backend_condition(template)
    operands = expression["operator"]["operands"]
    chosen = operands["true_value" if backend == "durableTaskScheduler" else "false_value"]
    return _as_object(template, chosen)
