"""The `notifications` consumer group: tell the customer what happened to their order."""

from __future__ import annotations

from eventbus.events import Envelope
from eventbus.registry import handles, housekeeping
from notifications.models import Notification
from notifications.services import OrderNotice, notifications_deliver, notifications_for_orders
from orders.events import OrderCancelled, OrderConfirmed, OrderRejected


@handles(OrderConfirmed, group="notifications")
def order_confirmed(envelopes: list[Envelope]) -> None:
    notifications_for_orders(
        notices=[
            OrderNotice(e.event_id, e.payload.customer_id, e.payload.order_id,  # type: ignore[attr-defined]
                        Notification.Kind.ORDER_CONFIRMED, {"total": e.payload.total})  # type: ignore[attr-defined]
            for e in envelopes
        ]
    )  # fmt: skip


@handles(OrderRejected, group="notifications")
def order_rejected(envelopes: list[Envelope]) -> None:
    notifications_for_orders(
        notices=[
            OrderNotice(e.event_id, e.payload.customer_id, e.payload.order_id,  # type: ignore[attr-defined]
                        Notification.Kind.ORDER_REJECTED, {"reason": e.payload.reason})  # type: ignore[attr-defined]
            for e in envelopes
        ]
    )  # fmt: skip


@handles(OrderCancelled, group="notifications")
def order_cancelled(envelopes: list[Envelope]) -> None:
    notifications_for_orders(
        notices=[
            OrderNotice(e.event_id, e.payload.customer_id, e.payload.order_id,  # type: ignore[attr-defined]
                        Notification.Kind.ORDER_CANCELLED,
                        {"was_confirmed": e.payload.previous_status == "confirmed"})  # type: ignore[attr-defined]
            for e in envelopes
        ]
    )  # fmt: skip


@housekeeping(group="notifications", every_s=30)
def send_stragglers() -> None:
    """E-mail notifications whose consumer died between committing them and sending them.
    Claims are exclusive (pending -> sending under SKIP LOCKED), so this never sends twice."""
    notifications_deliver()
