"""The durable-ops Function App: composition only.

The HTTP API and the housekeeping timers come from `operations/`; every module in
`orchestrators/` and `activities/` is discovered and registered, so adding an operation
kind is adding one orchestrator module and its activities (see docs/operations.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import azure.durable_functions as df
import azure.functions as func

import activities
import orchestrators
from operations import api, maintenance, webhook_delivery

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


def _modules(package: ModuleType) -> list[ModuleType]:
    """Every module of a package, by name, so registration order is stable."""
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    return [importlib.import_module(f"{package.__name__}.{name}") for name in names]


app.register_functions(api.bp)
app.register_functions(maintenance.bp)
app.register_functions(webhook_delivery.bp)
for _module in _modules(orchestrators) + _modules(activities):
    app.register_functions(_module.bp)
