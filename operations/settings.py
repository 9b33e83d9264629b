"""Every app setting the Function App reads, in one table.

The infra test checks each of these is set by infra/ (Bicep app settings) or has a
default, so a setting added here without a deployment value fails CI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["SETTINGS", "Setting", "get_setting"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One app setting: its name, its default (None: required or optional-without-default),
    and what it is for."""

    name: str
    default: str | None
    description: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AzureWebJobsStorage",
        None,
        "Storage connection string (locally `UseDevelopmentStorage=true` for Azurite). "
        "In Azure the identity-based AzureWebJobsStorage__* settings are used instead.",
    ),
    Setting(
        "AzureWebJobsStorage__blobServiceUri",
        None,
        "Blob endpoint for identity-based storage access in Azure (DefaultAzureCredential).",
    ),
    Setting("OPS_RESULTS_CONTAINER", "operation-results", "Blob container for results."),
)


def get_setting(name: str) -> str | None:
    """The setting's value from the environment, or its declared default."""
    for setting in SETTINGS:
        if setting.name == name:
            return os.environ.get(name, setting.default)
    raise KeyError(f"{name} is not declared in operations.settings.SETTINGS")
