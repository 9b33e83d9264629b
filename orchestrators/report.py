"""The `report` kind: fan out one activity per partition, aggregate, write JSON + CSV."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from operations.kinds import (
    OperationKind,
    operation_output,
    progress_status,
    register_kind,
    result_uri_of,
)
from operations.lifecycle import announces_end
from operations.result_writes import write_result
from operations.validation import InputSchema, IntegerField

__all__ = ["REPORT", "bp", "partition_plan", "report_operation"]

bp = df.Blueprint()

REPORT = register_kind(
    OperationKind(
        name="report",
        orchestrator="report_operation",
        description=(
            "Generates `rows` rows of synthetic sales data across `partitions` partitions "
            "in parallel and aggregates them per category; the result is JSON or CSV."
        ),
        input_schema=InputSchema(
            (
                IntegerField(
                    "rows",
                    minimum=1,
                    maximum=5_000_000,
                    default=1000,
                    description="Rows to generate and aggregate.",
                ),
                IntegerField(
                    "partitions",
                    minimum=1,
                    maximum=64,
                    default=4,
                    description="Partitions processed in parallel, one activity each.",
                ),
            )
        ),
        result_types=("application/json", "text/csv"),
    )
)


def partition_plan(rows: int, partitions: int) -> list[int]:
    """Rows per partition: as even as possible, the first ones take the remainder."""
    base, extra = divmod(rows, partitions)
    return [base + (1 if index < extra else 0) for index in range(partitions)]


@bp.orchestration_trigger(context_name="context", orchestration="report_operation")
@announces_end
def report_operation(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Fan out, report progress as partitions finish, then write the report."""
    envelope = context.get_input()
    operation_id = context.instance_id
    rows = int(envelope["input"]["rows"])
    partitions = int(envelope["input"]["partitions"])
    context.set_custom_status(progress_status(0.0, f"0 of {partitions} partitions done"))
    remaining = [
        context.call_activity(
            "report_partition", {"partition": index, "partitions": partitions, "rows": count}
        )
        for index, count in enumerate(partition_plan(rows, partitions))
    ]
    parts: list[dict[str, Any]] = []
    while remaining:
        finished = yield context.task_any(remaining)
        remaining.remove(finished)
        parts.append(finished.result)
        # Writing the blobs is the last ~10% of the work.
        context.set_custom_status(
            progress_status(
                0.9 * len(parts) / partitions, f"{len(parts)} of {partitions} partitions done"
            )
        )
    parts.sort(key=lambda part: int(part["partition"]))
    # Retried through storage outages (durable timers); a refused write fails at once.
    written = yield from write_result(
        context,
        "report_write",
        {
            "operationId": operation_id,
            "parts": parts,
            "generatedAt": context.current_utc_datetime.isoformat(),
        },
    )
    context.set_custom_status(progress_status(1.0, "report written"))
    return operation_output(
        REPORT, written["results"], written["summary"], result_uri_of(envelope, operation_id)
    )
