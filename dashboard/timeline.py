"""An order's life across every process, in time order: what `manage.py trace_order` prints and
the admin's order page shows.

It is read from what each part of the system kept: the order itself, the inbox (every event of
the order each group applied: when, by which consumer, in which batch and how long it took, at
which attempt), outbox rows not yet published (or kept), dead letters, inventory's reservations
and the notifications. The inbox is purged after INBOX_RETENTION_S: the timeline lasts that
long. Like check_invariants, this operations view reads every app's tables; the apps never do.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Q

from eventbus.models import ConsumerBatch, DeadLetter, OutboxEvent, ProcessedEvent
from inventory.models import Reservation
from notifications.models import Notification
from orders.models import Order

__all__ = ["Entry", "OrderNotFound", "find_order", "order_timeline"]


class OrderNotFound(LookupError):
    """No order, or more than one, has this id (or id prefix)."""


@dataclass
class Entry:
    """One thing that happened to an order."""

    at: dt.datetime
    kind: str  # order, event, handled, outbox, dead letter, reservation, notification
    what: str
    detail: dict[str, Any] = field(default_factory=dict)
    link: str = ""  # an admin page about it, where there is one

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


def find_order(text: str) -> Order:
    """The order whose id is, or starts with, `text` (with or without dashes). Raises
    OrderNotFound saying why when there is none, or more than one."""
    prefix = text.strip().lower().replace("-", "")
    if not prefix or any(c not in "0123456789abcdef" for c in prefix) or len(prefix) > 32:
        raise OrderNotFound(f"{text!r} is not an order id (or the start of one)")
    if len(prefix) == 32:
        order = Order.objects.filter(pk=uuid.UUID(prefix)).first()
        if order is None:
            raise OrderNotFound(f"no order has the id {uuid.UUID(prefix)}")
        return order
    # As the database writes a UUID: dashes after the 8th, 12th, 16th and 20th digit.
    dashed = "-".join(prefix[a:b] for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32)) if prefix[a:b])
    found = list(Order.objects.filter(id__startswith=dashed)[:2])
    if not found:
        raise OrderNotFound(f"no order's id starts with {text!r}")
    if len(found) > 1:
        raise OrderNotFound(f"more than one order's id starts with {text!r}: give more of it")
    return found[0]


def order_timeline(order: Order) -> list[Entry]:
    """Everything known about the order, oldest first."""
    events = _event_entries(order)
    entries = _order_entries(order)
    entries += events + _reservation_entries(order) + _notification_entries(order)
    return sorted(entries, key=lambda e: (e.at, _ORDER.get(e.kind, 9)))


# Within one instant: the event before what was done with it.
_ORDER = {"order": 0, "event": 1, "outbox": 2, "handled": 3, "reservation": 4, "notification": 5}


def _order_entries(order: Order) -> list[Entry]:
    entries = [Entry(order.created_at, "order", f"placed, total {order.total:,.2f}", {"customer": order.customer_id})]
    if order.confirmed_at:
        entries.append(Entry(order.confirmed_at, "order", "confirmed"))
    if order.rejected_at:
        entries.append(Entry(order.rejected_at, "order", "rejected", {"reason": order.rejection_reason}))
    if order.cancelled_at:
        entries.append(Entry(order.cancelled_at, "order", "cancelled"))
    return entries


def _event_entries(order: Order) -> list[Entry]:
    aggregate = str(order.id)
    handled = list(ProcessedEvent.objects.filter(aggregate_id=aggregate).order_by("processed_at"))
    batches = {b.id: b for b in ConsumerBatch.objects.filter(id__in={h.batch_id for h in handled if h.batch_id})}
    entries: list[Entry] = []
    seen: set[uuid.UUID] = set()
    for h in handled:
        if h.event_id not in seen:
            seen.add(h.event_id)
            entries.append(
                Entry(h.occurred_at or h.processed_at, "event", h.event_type,
                      {"event_id": str(h.event_id), "stream": h.stream, "message_id": h.message_id,
                       "correlation_id": str(h.correlation_id) if h.correlation_id else None})
            )  # fmt: skip
        batch = batches.get(h.batch_id)
        detail = {"group": h.consumer_group, "consumer": h.consumer, "attempt": h.attempt, "event_id": str(h.event_id)}
        if batch is not None:
            detail.update(batch_ms=batch.duration_ms, batch_size=batch.size)
        retried = f" on attempt {h.attempt}" if h.attempt > 1 else ""
        entries.append(
            Entry(h.processed_at, "handled", f"{h.event_type} applied by group {h.consumer_group}{retried}", detail)
        )
    # An event no group has applied yet, from its outbox row: published (and on its way to the
    # consumers) or not yet. Its kind says where it is, its text in which state.
    for row in OutboxEvent.objects.filter(aggregate_id=aggregate).exclude(event_id__in=seen):
        state = f"published {row.published_at:%H:%M:%S}" if row.published_at else "not yet published"
        entries.append(Entry(row.created_at, "outbox", f"{row.event_type} recorded, {state}",
                             {"event_id": str(row.event_id), "stream": row.stream}))  # fmt: skip
    dead = DeadLetter.objects.filter(Q(event_id__in=seen) | Q(fields__event__icontains=aggregate))
    for d in dead:
        what = (
            f"{d.event_type or 'message'} dead-lettered in group {d.consumer_group} ({d.status}) "
            f"after {d.attempts} attempt(s): {d.error[:200]}"
        )
        detail = {
            "id": d.pk,
            "group": d.consumer_group,
            "status": d.status,
            "first_failed": d.first_failed_at.isoformat(),
        }
        entries.append(
            Entry(d.last_failed_at, "dead letter", what, detail, f"/admin/eventbus/deadletter/{d.pk}/change/")
        )
    return entries


def _reservation_entries(order: Order) -> list[Entry]:
    entries = []
    for r in Reservation.objects.filter(order_id=order.id).order_by("product_id"):
        detail = {"product_id": r.product_id, "quantity": r.quantity}
        link = f"/admin/inventory/reservation/?order_id={order.id}"
        if r.released_at and r.released_at == r.created_at:  # a tombstone: cancelled before reserved
            entries.append(Entry(r.created_at, "reservation", f"product {r.product_id}: nothing to release yet "
                                 "(cancelled before reserved)", detail, link))  # fmt: skip
            continue
        entries.append(
            Entry(r.created_at, "reservation", f"reserved {r.quantity} of product {r.product_id}", detail, link)
        )
        if r.released_at:
            entries.append(
                Entry(r.released_at, "reservation", f"released {r.quantity} of product {r.product_id}", detail, link)
            )
    return entries


def _notification_entries(order: Order) -> list[Entry]:
    entries = []
    for n in Notification.objects.filter(order_id=order.id).order_by("created_at"):
        detail = {"kind": n.kind, "status": n.status, "event_id": str(n.event_id)}
        link = f"/admin/notifications/notification/{n.pk}/change/"
        entries.append(
            Entry(n.created_at, "notification", f"{n.get_kind_display()} notification created", detail, link)
        )
        if n.sent_at:
            entries.append(Entry(n.sent_at, "notification", f"{n.get_kind_display()} e-mail sent", detail, link))
        elif n.status == Notification.Status.DEAD:
            entries.append(Entry(n.created_at, "notification", f"e-mail dead: {n.error[:200]}", detail, link))
        elif n.error:
            entries.append(Entry(n.created_at, "notification", f"e-mail retrying: {n.error[:200]}", detail, link))
    return entries
