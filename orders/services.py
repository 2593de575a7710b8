"""Orders writes: placing, confirming, rejecting and cancelling orders, and the catalog copy.

Read top to bottom, this is what happens to an order. Its status changes only along
Order.TRANSITIONS, always the same way (`_transition`: one conditional update that moves the
orders still in a state that allows it and says which it moved), each in one transaction with
the event it publishes (transactional outbox).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

import bulk
from config.errors import Conflict, InvalidInput, LimitReached, NotFound, Unprocessable
from config.metrics import ORDERS_FINALIZED, ORDERS_PLACED, order_stage_reached, orders_counted
from eventbus import outbox
from eventbus.events import Envelope
from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderRejected
from orders.models import CatalogProduct, Order, OrderItem
from orders.selectors import catalog_products

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "MAX_LINES",
    "MAX_ORDER_TOTAL",
    "MAX_PRODUCT_ID",
    "MAX_QUANTITY",
    "Confirmation",
    "IdempotencyKeyReused",
    "OrderNotCancellable",
    "PlacedLine",
    "PlacedOrder",
    "Rejection",
    "TooManyPendingOrders",
    "catalog_product_apply",
    "derived_order_id",
    "lines_hash",
    "order_cancel",
    "order_confirm_many",
    "order_lines_errors",
    "order_place",
    "order_reject_many",
    "product_problem",
]

log = logging.getLogger(__name__)

MAX_LINES = 100
MAX_QUANTITY = 1000
MAX_PRODUCT_ID = 2**63 - 1  # inventory's product ids are 64-bit
CENT = Decimal("0.01")
MAX_ORDER_TOTAL = Decimal("999999999999.99")  # what Order.total, numeric(14, 2), holds
# A retry with the same Idempotency-Key within this window gets the first order back.
IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)
# Order ids derived from (customer, Idempotency-Key) live in their own UUIDv5 namespace.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0e0a52-7c3e-4f3c-9d8e-1f6a2b4c8d10")


class OrderNotCancellable(Conflict):
    pass


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


class TooManyPendingOrders(LimitReached):
    code = "too_many_pending_orders"


# --- placing ------------------------------------------------------------------------------------


def order_lines_errors(items: Sequence[tuple[int, int]]) -> dict[str, Any] | None:
    """The rules an order's lines follow, and the one place they are written: errors in the
    API's shape (messages about the list, or one dict per line in order, `{}` for a good line),
    or None if the lines are good. Whether each product exists and is on sale is checked
    against the catalog when the order is placed."""
    if not items:
        return {"items": ["This list may not be empty."]}
    if len(items) > MAX_LINES:
        return {"items": [f"Ensure this field has no more than {MAX_LINES} elements."]}
    seen: set[int] = set()
    errors: list[dict[str, list[str]]] = []
    for product_id, quantity in items:
        line: dict[str, list[str]] = {}
        if product_id < 1:
            line["product_id"] = ["Ensure this value is greater than or equal to 1."]
        elif product_id > MAX_PRODUCT_ID:
            line["product_id"] = [f"Ensure this value is less than or equal to {MAX_PRODUCT_ID}."]
        elif product_id in seen:
            line["product_id"] = ["This product is already in the order; list each product once."]
        if quantity < 1:
            line["quantity"] = ["Ensure this value is greater than or equal to 1."]
        elif quantity > MAX_QUANTITY:
            line["quantity"] = [f"Ensure this value is less than or equal to {MAX_QUANTITY}."]
        seen.add(product_id)
        errors.append(line)
    return {"items": errors} if any(errors) else None


def product_problem(product_id: int, product: Any | None) -> str:
    """Why an order cannot name this product (its catalog entry, or None), or ''."""
    if product is None:
        return f"Product {product_id} does not exist."
    if not product.active:
        return f"Product {product_id} is not available."
    return ""


def derived_order_id(customer_id: int, idempotency_key: str) -> uuid.UUID:
    """The id of the order a customer places with this Idempotency-Key, wherever it is placed."""
    return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{customer_id}:{idempotency_key}")


def lines_hash(items: Sequence[tuple[int, int]]) -> str:
    """What a retry with the same Idempotency-Key must ask for again, as a hash."""
    return hashlib.sha256(json.dumps([[p, q] for p, q in items]).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PlacedLine:
    """A line of an order as placed: the catalog's name and price at that moment."""

    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """What placing an order answers with: the order as it is now (just placed, or, for a
    replayed Idempotency-Key, as the first placement left it and the pipeline moved it since)."""

    id: uuid.UUID
    customer_id: int
    status: str
    total: Decimal
    items: tuple[PlacedLine, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    rejection_reason: str = ""
    confirmed_at: dt.datetime | None = None
    rejected_at: dt.datetime | None = None
    cancelled_at: dt.datetime | None = None
    replayed: bool = False

    @property
    def pk(self) -> uuid.UUID:
        """The order's id, under the name Django code reaches for."""
        return self.id


def order_place(
    *, customer: AbstractBaseUser, items: Sequence[tuple[int, int]], idempotency_key: str = ""
) -> PlacedOrder:
    """Place an order: Order, items and OrderPlaced commit together or not at all.

    `items` is a sequence of (product_id, quantity). Prices are taken from the catalog now.
    Raises InvalidInput (per line) for lines breaking order_lines_errors' rules, unknown or
    inactive products, and a total beyond what an order can hold; TooManyPendingOrders when the
    customer already holds MAX_PENDING_ORDERS_PER_CUSTOMER pending orders.

    With an `idempotency_key`, the order's id is derived from the customer and the key, and the
    key is stored with a hash of the lines in the order's own transaction: placing again with
    the same key and lines returns the order placed first (`replayed`) instead of a second one,
    also when the two race; the same key with other lines raises IdempotencyKeyReused.
    Three database round trips: BEGIN with the reads, the inserts, the COMMIT.
    """
    errors = order_lines_errors(items)
    if errors:
        raise InvalidInput(errors)
    if not idempotency_key:
        with transaction.atomic(), bulk.pipelined():
            return _place(customer, items, uuid.uuid4())
    order_id = derived_order_id(customer.pk, idempotency_key)
    request_hash = lines_hash(items)
    try:
        with transaction.atomic(), bulk.pipelined():
            return _place(customer, items, order_id, idempotency_key=idempotency_key, request_hash=request_hash)
    except IntegrityError:
        # The id is taken: the same key was used before (or by a racing retry that committed
        # first; PostgreSQL made this insert wait for it).
        replayed = _replay(customer, order_id, request_hash)
        if replayed is None:  # some other constraint failed
            raise
        return replayed


def _place(
    customer: AbstractBaseUser,
    items: Sequence[tuple[int, int]],
    order_id: uuid.UUID,
    *,
    idempotency_key: str = "",
    request_hash: str = "",
) -> PlacedOrder:
    limit = settings.MAX_PENDING_ORDERS_PER_CUSTOMER
    if limit:
        # The customer's row locked first, so two placements racing for the last place are
        # counted one after the other; all three reads go out in one round trip.
        locked = bulk.Select(get_user_model(), ["id"], where={"id": customer.pk}, lock=True).send()
        held = bulk.Select(
            Order, ["id"], where={"customer": customer.pk, "status": Order.Status.PENDING}, limit=limit
        ).send()
    catalog = catalog_products([p for p, _ in items])
    if limit:
        locked.rows()  # the lock is held; its answer (the customer's id) is not needed
        if len(held.rows()) >= limit:
            raise TooManyPendingOrders(
                f"You have {limit} orders waiting for confirmation, the most one customer may hold; "
                "place this one once they are confirmed or rejected (usually within seconds).",
                retry_after_s=5,
            )
    errors = []
    for product_id, _ in items:
        problem = product_problem(product_id, catalog.get(product_id))
        errors.append({"product_id": [problem]} if problem else {})
    if any(errors):
        raise InvalidInput({"items": errors})

    now = timezone.now()
    lines = tuple(PlacedLine(p, catalog[p].sku, catalog[p].name, quantity, catalog[p].price) for p, quantity in items)
    total = sum((line.line_total for line in lines), Decimal("0.00")).quantize(CENT)
    if total > MAX_ORDER_TOTAL:
        raise InvalidInput(
            {"items": [f"The order's total of {total:,.2f} is over the maximum of {MAX_ORDER_TOTAL:,.2f}; "
                       "split it into several orders."]}
        )  # fmt: skip
    bulk.insert(
        Order,
        [
            {
                "id": order_id, "customer": customer.pk, "status": Order.Status.PENDING, "total": total,
                "rejection_reason": "", "created_at": now, "updated_at": now,
                "idempotency_key": idempotency_key, "request_hash": request_hash,
            }
        ],
    )  # fmt: skip
    bulk.insert(
        OrderItem,
        [
            {"order": order_id, "product_id": line.product_id, "sku": line.sku, "name": line.name,
             "quantity": line.quantity, "unit_price": line.unit_price}
            for line in lines
        ],
    )  # fmt: skip
    outbox.record(
        OrderPlaced(
            order_id=order_id,
            customer_id=customer.pk,
            items=tuple(OrderLine(product_id=p, quantity=q) for p, q in items),
            total=total,
        ),
        aggregate_id=order_id,
    )
    orders_counted(ORDERS_PLACED)
    log.debug("order %s placed: %d line(s), total %s", order_id, len(lines), total, extra={"aggregate_id": order_id})
    return PlacedOrder(
        id=order_id, customer_id=customer.pk, status=Order.Status.PENDING, total=total, items=lines,
        created_at=now, updated_at=now,
    )  # fmt: skip


def _replay(customer: AbstractBaseUser, order_id: uuid.UUID, request_hash: str) -> PlacedOrder | None:
    """The order first placed with this key as it is now, or None if there is none."""
    order = Order.objects.prefetch_related("items").filter(pk=order_id, customer=customer.pk).first()
    if order is None:
        return None
    if order.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for an order with other items; use a new key for a different order."
        )
    if order.created_at < timezone.now() - IDEMPOTENCY_WINDOW:
        raise IdempotencyKeyReused(
            f"This Idempotency-Key was used more than {IDEMPOTENCY_WINDOW.total_seconds() / 3600:g} hours ago; "
            "use a new key for a new order."
        )
    return PlacedOrder(
        id=order.id, customer_id=order.customer_id, status=order.status, total=order.total,
        items=tuple(PlacedLine(i.product_id, i.sku, i.name, i.quantity, i.unit_price) for i in order.items.all()),
        created_at=order.created_at, updated_at=order.updated_at, rejection_reason=order.rejection_reason,
        confirmed_at=order.confirmed_at, rejected_at=order.rejected_at, cancelled_at=order.cancelled_at,
        replayed=True,
    )  # fmt: skip


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
