"""The system's invariants, checked against the database: what `manage.py check_invariants`
and the operations page report. Each check returns human-readable violations (empty: holds).

They describe a settled system: while events are in flight an order can briefly hold
reservations before it is confirmed, so check after the pipeline has drained
(`check_invariants --wait`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Count, Sum
from django.utils import timezone

from eventbus.models import OutboxEvent, ProcessedEvent
from inventory.models import Product, Reservation, StockAdjustment
from notifications.models import Notification
from orders.models import Order, OrderItem

LIMIT = 20  # violations listed per check


@dataclass
class Check:
    name: str
    violations: list[str] = field(default_factory=list)
    total: int = 0  # violations found, even beyond those listed

    def add(self, violation: str) -> None:
        self.total += 1
        if len(self.violations) < LIMIT:
            self.violations.append(violation)

    @property
    def ok(self) -> bool:
        return self.total == 0


def stock_is_conserved() -> Check:
    """For every product: stock + active reservations == initial stock + restocks + corrections."""
    check = Check("stock + active reservations = stock ever added, for every product")
    added = dict(
        StockAdjustment.objects.values_list("product_id").annotate(s=Sum("delta")).values_list("product_id", "s")
    )
    held = dict(
        Reservation.objects.filter(status=Reservation.Status.RESERVED)
        .values_list("product_id")
        .annotate(s=Sum("quantity"))
        .values_list("product_id", "s")
    )
    for pk, sku, stock in Product.objects.values_list("pk", "sku", "stock"):
        expected = added.get(pk, 0)
        if stock < 0 or stock + held.get(pk, 0) != expected:
            check.add(f"{sku}: stock {stock} + reserved {held.get(pk, 0)} != {expected} added")
    return check


def _reserved_lines() -> dict[str, dict[int, int]]:
    lines: dict[str, dict[int, int]] = defaultdict(dict)
    for order_id, product_id, quantity in Reservation.objects.filter(status=Reservation.Status.RESERVED).values_list(
        "order_id", "product_id", "quantity"
    ):
        lines[str(order_id)][product_id] = quantity
    return lines


def orders_hold_exactly_their_reservations() -> Check:
    """Confirmed orders hold exactly their lines; rejected and cancelled ones hold nothing."""
    check = Check("confirmed orders hold exactly their items; rejected and cancelled orders hold none")
    reserved = _reserved_lines()
    items: dict[str, dict[int, int]] = defaultdict(dict)
    for order_id, product_id, quantity in OrderItem.objects.filter(order__status=Order.Status.CONFIRMED).values_list(
        "order_id", "product_id", "quantity"
    ):
        items[str(order_id)][product_id] = quantity
    statuses = dict(Order.objects.values_list("id", "status"))
    for order_id, status in statuses.items():
        key = str(order_id)
        if status == Order.Status.CONFIRMED and reserved.get(key, {}) != items.get(key, {}):
            check.add(f"confirmed order {key}: reserved {reserved.get(key, {})} but ordered {items.get(key, {})}")
        elif status in (Order.Status.REJECTED, Order.Status.CANCELLED) and reserved.get(key):
            check.add(f"{status} order {key} still holds {reserved[key]}")
    known = {str(o) for o in statuses}
    for key in reserved.keys() - known:
        check.add(f"reservations for unknown order {key}: {reserved[key]}")
    return check


def _repeated(model: type, *fields: str) -> list[tuple]:
    """The combinations of `fields` found on more than one row, each with its count."""
    return list(
        model.objects.values_list(*fields).annotate(n=Count("pk")).filter(n__gt=1).values_list(*fields, "n")  # type: ignore[attr-defined]
    )


def no_event_handled_twice() -> Check:
    """No group applied an event twice: inbox rows, reservations and notifications are unique."""
    check = Check("no event handled twice by one group")
    for group, event_id, n in _repeated(ProcessedEvent, "consumer_group", "event_id"):
        check.add(f"group {group} recorded event {event_id} {n} times")
    for order_id, kind, n in _repeated(Notification, "order_id", "kind"):
        check.add(f"order {order_id}: {n} '{kind}' notifications")
    return check


def outbox_is_flowing(max_age: dt.timedelta) -> Check:
    check = Check(f"no outbox event unpublished for more than {max_age.total_seconds():g} s")
    stale = OutboxEvent.objects.filter(published_at__isnull=True, created_at__lt=timezone.now() - max_age)
    n = stale.count()
    if n:
        oldest = stale.order_by("id").first()
        check.add(f"{n} event(s) waiting; oldest {oldest.event_type} from {oldest.created_at:%Y-%m-%d %H:%M:%S}")
    return check


def orders_are_settled(max_age: dt.timedelta) -> Check:
    check = Check(f"no order pending for more than {max_age.total_seconds():g} s")
    stale = Order.objects.filter(status=Order.Status.PENDING, created_at__lt=timezone.now() - max_age)
    for order_id, created in stale.values_list("id", "created_at")[:LIMIT]:
        check.add(f"order {order_id} pending since {created:%Y-%m-%d %H:%M:%S}")
    extra = stale.count() - min(stale.count(), LIMIT)
    check.total += extra
    return check


def run_checks(*, outbox_max_age: dt.timedelta, pending_max_age: dt.timedelta) -> list[Check]:
    checks: list[Callable[[], Check]] = [
        stock_is_conserved,
        orders_hold_exactly_their_reservations,
        no_event_handled_twice,
        lambda: outbox_is_flowing(outbox_max_age),
        lambda: orders_are_settled(pending_max_age),
    ]
    return [c() for c in checks]
