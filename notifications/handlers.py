"""The `notifications` consumer group: tell the customer what happened to their order."""

from __future__ import annotations

from eventbus.events import Envelope
from eventbus.registry import handles, housekeeping
from notifications.models import Notification
from notifications.services import notification_for_order, notifications_deliver
from orders.events import OrderCancelled, OrderConfirmed, OrderRejected


@handles(OrderConfirmed, group="notifications")
def order_confirmed(envelope: Envelope) -> None:
    event: OrderConfirmed = envelope.payload  # type: ignore[assignment]
    notification_for_order(
        event_id=envelope.event_id, customer_id=event.customer_id, order_id=event.order_id,
        kind=Notification.Kind.ORDER_CONFIRMED, context={"total": event.total},
    )  # fmt: skip


@handles(OrderRejected, group="notifications")
def order_rejected(envelope: Envelope) -> None:
    event: OrderRejected = envelope.payload  # type: ignore[assignment]
    notification_for_order(
        event_id=envelope.event_id, customer_id=event.customer_id, order_id=event.order_id,
        kind=Notification.Kind.ORDER_REJECTED, context={"reason": event.reason},
    )  # fmt: skip


@handles(OrderCancelled, group="notifications")
def order_cancelled(envelope: Envelope) -> None:
    event: OrderCancelled = envelope.payload  # type: ignore[assignment]
    notification_for_order(
        event_id=envelope.event_id, customer_id=event.customer_id, order_id=event.order_id,
        kind=Notification.Kind.ORDER_CANCELLED, context={"was_confirmed": event.previous_status == "confirmed"},
    )  # fmt: skip


@housekeeping(group="notifications", every_s=30)
def send_stragglers() -> None:
    """E-mail notifications whose consumer died between committing them and sending them.
    Claims are exclusive (pending -> sending under SKIP LOCKED), so this never sends twice."""
    notifications_deliver()
