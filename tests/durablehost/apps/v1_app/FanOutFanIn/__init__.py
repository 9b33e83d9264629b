import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    count = context.get_input()["count"]
    tasks = [context.call_activity("MeasureWork", n) for n in range(count)]
    squares = yield context.task_all(tasks)
    return {"parts": len(squares), "total": sum(squares)}


main = df.Orchestrator.create(orchestrator_function)
