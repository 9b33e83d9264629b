from datetime import timedelta

import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    job = context.get_input()
    expiry = context.current_utc_datetime + timedelta(seconds=job["expirySeconds"])
    attempt = 0
    while context.current_utc_datetime < expiry:
        attempt += 1
        state = yield context.call_activity("CheckJob", {"jobId": job["jobId"], "attempt": attempt})
        context.set_custom_status({"attempt": attempt, "state": state})
        if state == "done":
            return {"jobId": job["jobId"], "checks": attempt}
        yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=200))
    return {"jobId": job["jobId"], "checks": attempt, "expired": True}


main = df.Orchestrator.create(orchestrator_function)
