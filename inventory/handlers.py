"""The `inventory` consumer group: reserve stock for placed orders, release it for cancelled ones."""

from __future__ import annotations

from eventbus.messages.events import Envelope
from eventbus.messages.registry import handles
from inventory import services
from orders.events import OrderCancelled, OrderPlaced


def _lines(event: OrderPlaced | OrderCancelled) -> tuple[tuple[int, int], ...]:
    return tuple((i.product_id, i.quantity) for i in event.items)


@handles(OrderPlaced, group="inventory", pipeline_safe=True)
def reserve_stock(envelopes: list[Envelope[OrderPlaced]]) -> None:
    services.stock_reserve_many(
        requests=[services.StockRequest(e.payload.order_id, _lines(e.payload), e) for e in envelopes]
    )


@handles(OrderCancelled, group="inventory")
def release_stock(envelopes: list[Envelope[OrderCancelled]]) -> None:
    for e in envelopes:
        services.stock_release(order_id=e.payload.order_id, lines=_lines(e.payload), caused_by=e)
