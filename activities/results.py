"""A shared activity: write a small JSON document as an operation's result blob."""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
from azure.core.exceptions import AzureError

from operations.blobstore import BlobStore, result_blob_name
from operations.errors import StorageConfigurationError
from operations.result_writes import refused_write

__all__ = ["bp", "write_json_result"]

bp = df.Blueprint()


@bp.activity_trigger(input_name="task", activity="write_json_result")
def write_json_result(task: dict[str, Any]) -> dict[str, str]:
    """Write `task["document"]` to `<operationId>/result.json`; the results map.

    Call it with `operations.result_writes.write_result`: a storage outage raises
    TransientError, a refused write answers `{"writeRefused": reason}`.
    """
    name = result_blob_name(str(task["operationId"]), "application/json")
    try:
        BlobStore.from_settings().write_blob(
            name, json.dumps(task["document"], indent=2).encode(), "application/json"
        )
    except (AzureError, StorageConfigurationError) as error:
        return refused_write(error, name)
    return {"application/json": name}
