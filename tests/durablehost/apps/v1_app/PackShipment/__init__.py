from ..shared_code.shipping import Shipment


def main(shipment: Shipment) -> Shipment:
    if not isinstance(shipment, Shipment):
        raise TypeError(f"expected a Shipment, got {type(shipment).__name__}")
    return Shipment(shipment.order_id, shipment.items, status=f"packed {len(shipment.items)}")
