import azure.durable_functions as df

from ..shared_code.shipping import Shipment


def orchestrator_function(context: df.DurableOrchestrationContext):
    order = context.get_input()
    shipment = Shipment(order["orderId"], order["items"])
    shipped = yield context.call_sub_orchestrator("ShipOrder", shipment)
    return {"orderId": shipped.order_id, "status": shipped.status, "type": type(shipped).__name__}


main = df.Orchestrator.create(orchestrator_function)
