"""The `inventory` consumer group: reserve stock for placed orders, release it for cancelled ones."""

from __future__ import annotations

from eventbus.events import Envelope
from eventbus.registry import handles
from inventory import services
from orders.events import OrderCancelled, OrderPlaced


@handles(OrderPlaced, group="inventory")
def reserve_stock(envelope: Envelope) -> None:
    event: OrderPlaced = envelope.payload  # type: ignore[assignment]
    services.stock_reserve(
        order_id=event.order_id, lines=[(i.product_id, i.quantity) for i in event.items], caused_by=envelope
    )


@handles(OrderCancelled, group="inventory")
def release_stock(envelope: Envelope) -> None:
    event: OrderCancelled = envelope.payload  # type: ignore[assignment]
    services.stock_release(
        order_id=event.order_id, lines=[(i.product_id, i.quantity) for i in event.items], caused_by=envelope
    )
