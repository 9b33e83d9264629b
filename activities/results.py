"""A shared activity: write a small JSON document as an operation's result blob."""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df

from operations.blobstore import BlobStore, result_blob_name

__all__ = ["bp", "write_json_result"]

bp = df.Blueprint()


@bp.activity_trigger(input_name="task", activity="write_json_result")
def write_json_result(task: dict[str, Any]) -> dict[str, str]:
    """Write `task["document"]` to `<operationId>/result.json`; the results map."""
    name = result_blob_name(str(task["operationId"]), "application/json")
    BlobStore.from_settings().write_blob(
        name, json.dumps(task["document"], indent=2).encode(), "application/json"
    )
    return {"application/json": name}
