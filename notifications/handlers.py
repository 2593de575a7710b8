"""The `notifications` consumer group: tell the customer what happened to their order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventbus.events import Envelope
from eventbus.registry import handles, housekeeping
from notifications.models import Notification
from notifications.services import OrderNotice, notifications_deliver, notifications_for_orders
from orders.events import OrderCancelled, OrderConfirmed, OrderRejected

# event type -> (kind of notification, what its template needs from the event)
_NOTICES: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    OrderConfirmed.type: (Notification.Kind.ORDER_CONFIRMED, lambda e: {"total": e.total}),
    OrderRejected.type: (Notification.Kind.ORDER_REJECTED, lambda e: {"reason": e.reason}),
    OrderCancelled.type: (
        Notification.Kind.ORDER_CANCELLED,
        lambda e: {"was_confirmed": e.previous_status == "confirmed"},
    ),
}


@handles(OrderConfirmed, OrderRejected, OrderCancelled, group="notifications")
def notify_customers(envelopes: list[Envelope[OrderConfirmed | OrderRejected | OrderCancelled]]) -> None:
    notices = []
    for e in envelopes:
        kind, context = _NOTICES[e.type]
        event = e.payload
        notices.append(
            OrderNotice(e.event_id, event.customer_id, event.order_id, kind, context(event), e.correlation_started_at)
        )
    notifications_for_orders(notices=notices)


@housekeeping(group="notifications", every_s=30)
def send_stragglers() -> None:
    """E-mail notifications whose consumer died between committing them and sending them.
    Claims are exclusive (pending -> sending under SKIP LOCKED), so this never sends twice."""
    notifications_deliver()
