"""The `notifications` consumer group: record what to tell the customer about their order. The
mailer (notifications.mailer, `manage.py send_emails`) sends it, off this path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventbus.messages.events import Envelope
from eventbus.messages.registry import handles
from notifications.models import Notification
from notifications.services import OrderNotice, notifications_for_orders
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
            OrderNotice(
                e.event_id, event.customer_id, event.order_id, kind, context(event), e.correlation_started_at,
                e.correlation_id,
            )
        )  # fmt: skip
    notifications_for_orders(notices=notices)
