import azure.durable_functions as df

from ..shared_code.shipping import Shipment


def orchestrator_function(context: df.DurableOrchestrationContext):
    shipment = context.get_input()
    if not isinstance(shipment, Shipment):
        raise TypeError(f"expected a Shipment, got {type(shipment).__name__}")
    packed = yield context.call_activity("PackShipment", shipment)
    return packed


main = df.Orchestrator.create(orchestrator_function)
