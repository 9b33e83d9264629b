from datetime import timedelta

import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    request = context.get_input()
    deadline = context.current_utc_datetime + timedelta(seconds=request["timeoutSeconds"])
    timeout = context.create_timer(deadline)
    approval = context.wait_for_external_event("ApprovalEvent")
    context.set_custom_status("waiting for approval")
    winner = yield context.task_any([approval, timeout])
    if winner == approval:
        timeout.cancel()
        return {"outcome": "approved" if approval.result["approved"] else "rejected"}
    return {"outcome": "timed out"}


main = df.Orchestrator.create(orchestrator_function)
