"""The `orders` consumer group: confirm or reject orders on inventory's answer, and keep the
catalog copy current."""

from __future__ import annotations

from eventbus.messages.events import Envelope
from eventbus.messages.registry import handles
from inventory.events import InventoryReservationFailed, InventoryReserved, ProductChanged
from orders import services


@handles(InventoryReserved, group="orders")
def confirm_orders(envelopes: list[Envelope[InventoryReserved]]) -> None:
    services.order_confirm_many(confirmations=[services.Confirmation(e.payload.order_id, e) for e in envelopes])


@handles(InventoryReservationFailed, group="orders")
def reject_orders(envelopes: list[Envelope[InventoryReservationFailed]]) -> None:
    services.order_reject_many(
        rejections=[services.Rejection(e.payload.order_id, e.payload.reason, e) for e in envelopes]
    )


@handles(ProductChanged, group="orders")
def update_catalog(envelopes: list[Envelope[ProductChanged]]) -> None:
    for e in envelopes:
        event = e.payload
        services.catalog_product_apply(
            product_id=event.product_id, sku=event.sku, name=event.name,
            price=event.price, active=event.active, revision=event.revision,
        )  # fmt: skip
