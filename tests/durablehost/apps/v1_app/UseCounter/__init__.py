import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    total = yield context.call_entity(df.EntityId("Counter", "tally"), "add", 1)
    return total


main = df.Orchestrator.create(orchestrator_function)
