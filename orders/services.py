"""Orders writes: confirming, rejecting and cancelling orders, and the catalog copy.

Placing an order is orders.placing (its rules and its one writer; order_place is here too, for
callers placing one order). Read top to bottom, this is what happens to an order after that.
Its status changes only along Order.TRANSITIONS, always the same way (`_transition`: one
conditional update that moves the orders still in a state that allows it and says which it
moved), each in one transaction with the event it publishes (transactional outbox).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

import bulk
from config.errors import Conflict, NotFound
from config.metrics import ORDERS_FINALIZED, order_stage_reached, orders_counted
from eventbus.messages.events import Envelope
from eventbus.store import outbox
from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderRejected
from orders.models import CatalogProduct, Order, OrderItem
from orders.placing import order_place

__all__ = [
    "Confirmation",
    "OrderNotCancellable",
    "Rejection",
    "catalog_product_apply",
    "order_cancel",
    "order_confirm_many",
    "order_place",
    "order_reject_many",
]

log = logging.getLogger(__name__)


class OrderNotCancellable(Conflict):
    pass


# --- status transitions -----------------------------------------------------------------------


def _transition(to: str, where: dict[str, Any], returning: Sequence[str]) -> list[tuple[Any, ...]]:
    """Move the orders matching `where` that are in a state allowed to reach `to` (TRANSITIONS),
    stamping `<to>_at`, in one conditional update. Returns `returning` of each order it moved:
    an order that moved on meanwhile (cancelled while its stock was reserved) does not match and
    is left as it is. Two racing transitions can never both move an order."""
    now = timezone.now()
    moved = bulk.update(
        Order,
        {"status": to, f"{to}_at": now, "updated_at": now},
        where={**where, "status__in": Order.TRANSITIONS[to]},
        returning=returning,
    )
    orders_counted(ORDERS_FINALIZED.labels(to), len(moved))
    return moved


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Inventory reserved an order's stock."""

    order_id: uuid.UUID
    caused_by: Envelope | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Inventory could not reserve an order's stock, for `reason`."""

    order_id: uuid.UUID
    reason: str
    caused_by: Envelope | None = None


@transaction.atomic
def order_confirm_many(*, confirmations: Sequence[Confirmation]) -> int:
    """pending -> confirmed for each order, publishing OrderConfirmed. Returns how many moved."""
    moved = {
        order_id: (customer_id, total)
        for order_id, customer_id, total in _transition(
            Order.Status.CONFIRMED, {"id__in": [c.order_id for c in confirmations]}, ("id", "customer", "total")
        )
    }
    outbox.record_many(
        [
            (OrderConfirmed(order_id=c.order_id, customer_id=moved[c.order_id][0], total=moved[c.order_id][1]),
             c.order_id, c.caused_by)
            for c in confirmations
            if c.order_id in moved
        ]
    )  # fmt: skip
    order_stage_reached(
        Order.Status.CONFIRMED,
        (c.caused_by.correlation_started_at for c in confirmations if c.order_id in moved and c.caused_by),
    )
    return len(moved)


@transaction.atomic
def order_reject_many(*, rejections: Sequence[Rejection]) -> int:
    """pending -> rejected with its reason for each order, publishing OrderRejected. Returns how
    many moved."""
    moved = dict(_transition(Order.Status.REJECTED, {"id__in": [r.order_id for r in rejections]}, ("id", "customer")))
    rejected = [r for r in rejections if r.order_id in moved]
    bulk.update_each(Order, "rejection_reason", {r.order_id: r.reason for r in rejected})
    outbox.record_many(
        [
            (
                OrderRejected(order_id=r.order_id, customer_id=moved[r.order_id], reason=r.reason),
                r.order_id,
                r.caused_by,
            )
            for r in rejected
        ]
    )
    return len(rejected)


@transaction.atomic
def order_cancel(*, order_id: uuid.UUID, customer: AbstractBaseUser | None = None) -> None:
    """pending or confirmed -> cancelled, publishing OrderCancelled (inventory then releases
    the stock and the customer is notified). With `customer`, only that customer's order.

    Raises NotFound, or OrderNotCancellable if the order is rejected or already cancelled.
    """
    where: dict[str, Any] = {"id": order_id}
    if customer is not None:
        where["customer"] = customer.pk
    moved = _transition(Order.Status.CANCELLED, where, ("customer", "confirmed_at"))
    if not moved:
        status = Order.objects.filter(pk=order_id, **({"customer": customer} if customer else {})).values_list(
            "status", flat=True
        )
        if not status:
            raise NotFound("No such order.")
        raise OrderNotCancellable(f"This order is {status[0]} and can no longer be cancelled.")
    ((customer_id, confirmed_at),) = moved
    items = tuple(
        OrderLine(product_id=p, quantity=q)
        for p, q in OrderItem.objects.filter(order=order_id).values_list("product_id", "quantity")
    )
    previous = Order.Status.CONFIRMED if confirmed_at else Order.Status.PENDING
    outbox.record(
        OrderCancelled(order_id=order_id, customer_id=customer_id, items=items, previous_status=previous),
        aggregate_id=order_id,
    )


# --- the catalog copy -----------------------------------------------------------------------------


def catalog_product_apply(*, product_id: int, sku: str, name: str, price: Decimal, active: bool, revision: int) -> None:
    """Apply a catalog change from inventory; an older revision than the one held is ignored."""
    values = {"sku": sku, "name": name, "price": price, "active": active, "revision": revision}
    updated = CatalogProduct.objects.filter(product_id=product_id, revision__lt=revision).update(**values)
    if not updated:
        CatalogProduct.objects.get_or_create(product_id=product_id, defaults=values)
