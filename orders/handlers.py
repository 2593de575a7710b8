"""The `orders` consumer group: confirm or reject orders on inventory's answer, and keep the
catalog copy current."""

from __future__ import annotations

from eventbus.events import Envelope
from eventbus.registry import handles
from inventory.events import InventoryReservationFailed, InventoryReserved, ProductChanged
from orders import services


@handles(InventoryReserved, group="orders")
def confirm_order(envelope: Envelope) -> None:
    event: InventoryReserved = envelope.payload  # type: ignore[assignment]
    services.order_confirm(order_id=event.order_id, caused_by=envelope)


@handles(InventoryReservationFailed, group="orders")
def reject_order(envelope: Envelope) -> None:
    event: InventoryReservationFailed = envelope.payload  # type: ignore[assignment]
    services.order_reject(order_id=event.order_id, reason=event.reason, caused_by=envelope)


@handles(ProductChanged, group="orders")
def update_catalog(envelope: Envelope) -> None:
    event: ProductChanged = envelope.payload  # type: ignore[assignment]
    services.catalog_product_apply(
        product_id=event.product_id, sku=event.sku, name=event.name,
        price=event.price, active=event.active, revision=event.revision,
    )  # fmt: skip
