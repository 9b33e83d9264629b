"""The `approval` kind: wait for an `approve` event, raced against a durable timer."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
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
from operations.monitor import iso_utc
from operations.result_writes import write_result
from operations.validation import InputSchema, IntegerField, StringField

__all__ = ["APPROVAL", "APPROVE_EVENT", "approval_operation", "bp", "decision_of"]

bp = df.Blueprint()

APPROVE_EVENT = "approve"

APPROVAL = register_kind(
    OperationKind(
        name="approval",
        orchestrator="approval_operation",
        description=(
            "Waits for a human decision: the `approve` event ({approved, by}), sent with "
            "POST /api/operations/{id}/approve or the built-in sendEventPostUri, raced "
            "against a durable timer of `timeoutSeconds`. The outcome is the result."
        ),
        input_schema=InputSchema(
            (
                StringField("subject", max_length=500, description="What is to be approved."),
                IntegerField(
                    "timeoutSeconds",
                    minimum=1,
                    maximum=30 * 24 * 3600,
                    description="How long to wait for the decision.",
                ),
            )
        ),
    )
)


def decision_of(event: Any) -> tuple[bool, str]:
    """(approved, by) from an event payload; anything but `approved: true` is a no."""
    if isinstance(event, str):
        # The built-in raiseEvent endpoint may hand the payload over as JSON text.
        import json

        try:
            event = json.loads(event)
        except ValueError:
            event = {}
    if not isinstance(event, dict):
        return False, ""
    return event.get("approved") is True, str(event.get("by") or "")[:200]


@bp.orchestration_trigger(context_name="context", orchestration="approval_operation")
@announces_end
def approval_operation(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Race the approve event against the timeout; write the outcome as the result."""
    envelope = context.get_input()
    subject = str(envelope["input"]["subject"])
    timeout = int(envelope["input"]["timeoutSeconds"])
    started = context.current_utc_datetime
    deadline = started + timedelta(seconds=timeout)
    context.set_custom_status(
        progress_status(0.0, f"waiting for approval until {iso_utc(deadline)}")
    )
    timer = context.create_timer(deadline)
    event = context.wait_for_external_event(APPROVE_EVENT)
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        approved, by = decision_of(event.result)
        outcome = "approved" if approved else "rejected"
    else:
        approved, by, outcome = False, "", "timedOut"
    document = {
        "operationId": context.instance_id,
        "kind": APPROVAL.name,
        "subject": subject,
        "outcome": outcome,
        "approved": approved,
        "by": by or None,
        "requestedAt": iso_utc(started),
        "decidedAt": iso_utc(context.current_utc_datetime),
    }
    results = yield from write_result(
        context, "write_json_result", {"operationId": context.instance_id, "document": document}
    )
    context.set_custom_status(progress_status(1.0, outcome))
    summary = {"outcome": outcome, "approved": approved}
    return operation_output(
        APPROVAL, results, summary, result_uri_of(envelope, context.instance_id)
    )
