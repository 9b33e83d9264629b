import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("SayHello", "Tokyo")
    second = yield context.call_activity("SayHello", "Seattle")
    third = yield context.call_activity("SayHello", "London")
    return [first, second, third]


main = df.Orchestrator.create(orchestrator_function)
