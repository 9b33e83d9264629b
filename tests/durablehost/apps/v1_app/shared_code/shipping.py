"""A custom class passed between orchestrators and activities: the SDK serialises it
with to_json and rebuilds it with from_json."""


class Shipment:
    def __init__(self, order_id: str, items: list, status: str = "new") -> None:
        self.order_id = order_id
        self.items = items
        self.status = status

    @staticmethod
    def to_json(obj: "Shipment") -> dict:
        return {"orderId": obj.order_id, "items": obj.items, "status": obj.status}

    @staticmethod
    def from_json(data: dict) -> "Shipment":
        return Shipment(data["orderId"], data["items"], data["status"])
