"""Activities of the `report` kind: generate + aggregate one partition; merge and write.

The data is synthetic but the work is real: each partition draws its rows from a PRNG
seeded by (partition, partitions), so the same input always yields the same report, and
aggregates them per category (count, sum, min, max). Amounts are integers so sums are
exact and independent of the order partitions finish in.
"""

from __future__ import annotations

import csv
import io
import json
import random
from typing import Any

import azure.durable_functions as df
from azure.core.exceptions import AzureError

from operations.blobstore import BlobStore, result_blob_name
from operations.errors import StorageConfigurationError
from operations.result_writes import refused_write

__all__ = [
    "CATEGORIES",
    "bp",
    "generate_partition",
    "merge_partitions",
    "render_csv",
    "report_document",
]

bp = df.Blueprint()

CATEGORIES: tuple[str, ...] = (
    "books",
    "electronics",
    "garden",
    "grocery",
    "health",
    "music",
    "sports",
    "toys",
)
MAX_AMOUNT = 10_000


def _empty_stats() -> dict[str, int | None]:
    return {"count": 0, "sum": 0, "min": None, "max": None}


def generate_partition(partition: int, partitions: int, rows: int) -> dict[str, Any]:
    """Draw `rows` rows for this partition and aggregate them per category."""
    rng = random.Random(f"report:{partition}:{partitions}")
    counts = [0] * len(CATEGORIES)
    sums = [0] * len(CATEGORIES)
    mins = [MAX_AMOUNT + 1] * len(CATEGORIES)
    maxs = [0] * len(CATEGORIES)
    randrange = rng.randrange
    buckets = len(CATEGORIES)
    for _ in range(rows):
        category = randrange(buckets)
        amount = randrange(1, MAX_AMOUNT + 1)
        counts[category] += 1
        sums[category] += amount
        if amount < mins[category]:
            mins[category] = amount
        if amount > maxs[category]:
            maxs[category] = amount
    stats = {
        name: {
            "count": counts[i],
            "sum": sums[i],
            "min": mins[i] if counts[i] else None,
            "max": maxs[i] if counts[i] else None,
        }
        for i, name in enumerate(CATEGORIES)
    }
    return {"partition": partition, "rows": rows, "categories": stats}


def merge_partitions(parts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-category totals over all partitions (order does not matter)."""
    merged: dict[str, dict[str, Any]] = {name: _empty_stats() for name in CATEGORIES}
    for part in parts:
        for name, stats in part["categories"].items():
            into = merged.setdefault(name, _empty_stats())
            into["count"] += stats["count"]
            into["sum"] += stats["sum"]
            for bound, pick in (("min", min), ("max", max)):
                if stats[bound] is not None:
                    current = into[bound]
                    into[bound] = stats[bound] if current is None else pick(current, stats[bound])
    for stats in merged.values():
        stats["mean"] = round(stats["sum"] / stats["count"], 4) if stats["count"] else None
    return merged


def report_document(
    operation_id: str, parts: list[dict[str, Any]], generated_at: str
) -> dict[str, Any]:
    """The JSON report; `rows` is the number of rows aggregated (equals the input)."""
    merged = merge_partitions(parts)
    rows = sum(int(part["rows"]) for part in parts)
    return {
        "operationId": operation_id,
        "kind": "report",
        "generatedAt": generated_at,
        "rows": rows,
        "partitions": len(parts),
        "totals": {
            "count": sum(s["count"] for s in merged.values()),
            "sum": sum(s["sum"] for s in merged.values()),
        },
        "categories": [{"category": name, **merged[name]} for name in sorted(merged)],
    }


def render_csv(document: dict[str, Any]) -> str:
    """The report's categories as CSV with a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ["category", "count", "sum", "min", "max", "mean"]
    writer.writerow(columns)
    for row in document["categories"]:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return out.getvalue()


@bp.activity_trigger(input_name="task", activity="report_partition")
def report_partition(task: dict[str, Any]) -> dict[str, Any]:
    """Generate and aggregate one partition."""
    return generate_partition(int(task["partition"]), int(task["partitions"]), int(task["rows"]))


@bp.activity_trigger(input_name="task", activity="report_write")
def report_write(task: dict[str, Any]) -> dict[str, Any]:
    """Merge the partitions and write the report as JSON and CSV blobs.

    Call it with `operations.result_writes.write_result`: a storage outage raises
    TransientError, a refused write answers `{"writeRefused": reason}`.
    """
    operation_id = str(task["operationId"])
    document = report_document(operation_id, list(task["parts"]), str(task["generatedAt"]))
    json_name = result_blob_name(operation_id, "application/json")
    csv_name = result_blob_name(operation_id, "text/csv")
    try:
        store = BlobStore.from_settings()
        store.write_blob(json_name, json.dumps(document, indent=2).encode(), "application/json")
        store.write_blob(csv_name, render_csv(document).encode(), "text/csv")
    except (AzureError, StorageConfigurationError) as error:
        # Raises when a later attempt may succeed; both names are overwritten by it.
        return refused_write(error, f"the report of {operation_id}")
    return {
        "results": {"application/json": json_name, "text/csv": csv_name},
        "summary": {"rows": document["rows"], "partitions": document["partitions"]},
    }
