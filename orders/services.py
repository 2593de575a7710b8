"""Orders writes: placing, confirming, rejecting and cancelling orders, and the catalog copy.

Status changes only along Order.TRANSITIONS, each in one transaction with the event it
publishes (transactional outbox).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config.errors import Conflict, InvalidInput, LimitReached, NotFound, Unprocessable
from eventbus import bulk, outbox
from eventbus.events import Envelope
from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderRejected
from orders.models import CatalogProduct, Order, OrderItem
from orders.selectors import catalog_products

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "MAX_LINES",
    "MAX_ORDER_TOTAL",
    "MAX_QUANTITY",
    "IdempotencyKeyReused",
    "OrderNotCancellable",
    "TooManyPendingOrders",
    "catalog_product_apply",
    "order_cancel",
    "order_confirm",
    "order_confirm_many",
    "order_place",
    "order_reject",
    "order_reject_many",
]

MAX_LINES = 100
MAX_QUANTITY = 1000
CENT = Decimal("0.01")
# What Order.total (numeric(14, 2)) holds.
MAX_ORDER_TOTAL = Decimal("999999999999.99")
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


def _validate_lines(items: Sequence[tuple[int, int]]) -> None:
    if not items:
        raise InvalidInput({"items": ["An order needs at least one item."]})
    if len(items) > MAX_LINES:
        raise InvalidInput({"items": [f"An order has at most {MAX_LINES} items."]})
    # Line errors by position, {} for a good line: the shape the API's serializer reports too.
    seen: set[int] = set()
    errors: list[dict[str, list[str]]] = []
    for product_id, quantity in items:
        line: dict[str, list[str]] = {}
        if not 1 <= quantity <= MAX_QUANTITY:
            line["quantity"] = [f"Quantity must be between 1 and {MAX_QUANTITY}."]
        if product_id in seen:
            line["product_id"] = ["This product is already in the order; list each product once."]
        seen.add(product_id)
        errors.append(line)
    if any(errors):
        raise InvalidInput({"items": errors})


def order_place(*, customer: AbstractBaseUser, items: Sequence[tuple[int, int]], idempotency_key: str = "") -> Order:
    """Place an order: Order, items and OrderPlaced commit together or not at all.

    `items` is a sequence of (product_id, quantity). Prices are taken from the catalog now.
    Raises InvalidInput (per line) for unknown or inactive products and bad quantities, and for
    a total beyond what an order can hold; TooManyPendingOrders when the customer already holds
    MAX_PENDING_ORDERS_PER_CUSTOMER pending orders.

    With an `idempotency_key`, the order's id is derived from the customer and the key, and the
    key is stored with a hash of the lines in the order's own transaction: placing again with
    the same key and lines returns the order placed first (`replayed` set on it) instead of a
    second one, also when the two race; the same key with other lines raises
    IdempotencyKeyReused. Without a key: three database round trips (BEGIN with the catalog
    read, the three inserts, the COMMIT).
    """
    _validate_lines(items)
    if not idempotency_key:
        with transaction.atomic(), bulk.pipelined():
            return _place(customer, items, uuid.uuid4())
    order_id = uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{customer.pk}:{idempotency_key}")
    request_hash = _lines_hash(items)
    try:
        with transaction.atomic(), bulk.pipelined():
            order = _place(customer, items, order_id, idempotency_key=idempotency_key, request_hash=request_hash)
    except IntegrityError:
        # The id is taken: the same key was used before (or by a racing retry that committed
        # first; PostgreSQL made this insert wait for it).
        replayed = _replay(customer, order_id, request_hash)
        if replayed is None:  # some other constraint failed
            raise
        return replayed
    return order


def _lines_hash(items: Sequence[tuple[int, int]]) -> str:
    return hashlib.sha256(json.dumps([[p, q] for p, q in items]).encode()).hexdigest()


def _replay(customer: AbstractBaseUser, order_id: uuid.UUID, request_hash: str) -> Order | None:
    """The order first placed with this key, or None if there is none."""
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
    order.replayed = True
    return order


class PlacedLine(NamedTuple):
    """A line of an order just placed, as the API answers with it (no read back)."""

    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


def _place(
    customer: AbstractBaseUser,
    items: Sequence[tuple[int, int]],
    order_id: uuid.UUID,
    *,
    idempotency_key: str = "",
    request_hash: str = "",
) -> Order:
    _hold_pending_limit(customer)
    catalog = catalog_products([p for p, _ in items])
    errors = []
    for product_id, _ in items:
        product = catalog.get(product_id)
        if product is None:
            errors.append({"product_id": [f"Product {product_id} does not exist."]})
        elif not product.active:
            errors.append({"product_id": [f"Product {product_id} is not available."]})
        else:
            errors.append({})
    if any(errors):
        raise InvalidInput({"items": errors})

    now = timezone.now()
    lines = [PlacedLine(p, catalog[p].sku, catalog[p].name, quantity, catalog[p].price) for p, quantity in items]
    total = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00")).quantize(CENT)
    if total > MAX_ORDER_TOTAL:
        raise InvalidInput(
            {"items": [f"The order's total of {total:,.2f} is over the maximum of {MAX_ORDER_TOTAL:,.2f}; "
                       "split it into several orders."]}
        )  # fmt: skip
    # The hot path of the API: bulk statements queued in the pipeline, not the ORM's saves.
    bulk.insert(
        Order,
        (
            "id", "customer", "status", "total", "rejection_reason", "created_at", "updated_at",
            "idempotency_key", "request_hash",
        ),
        [(order_id, customer.pk, Order.Status.PENDING, total, "", now, now, idempotency_key, request_hash)],
    )  # fmt: skip
    bulk.insert(
        OrderItem,
        ("order", "product_id", "sku", "name", "quantity", "unit_price"),
        [(order_id, *line) for line in lines],
    )
    outbox.record(
        OrderPlaced(
            order_id=order_id,
            customer_id=customer.pk,
            items=tuple(OrderLine(product_id=p, quantity=q) for p, q in items),
            total=total,
        ),
        aggregate_id=order_id,
    )
    order = Order(id=order_id, customer=customer, total=total, created_at=now, updated_at=now)
    order._state.adding, order._state.db = False, connection.alias
    order.placed_items = lines  # the API answers with them without reading them back
    order.replayed = False
    return order


def _hold_pending_limit(customer: AbstractBaseUser) -> None:
    """Refuse a new order while the customer holds MAX_PENDING_ORDERS_PER_CUSTOMER pending ones
    (0: no limit). The customer's row is locked first, so two placements racing for the last
    place are counted one after the other."""
    limit = settings.MAX_PENDING_ORDERS_PER_CUSTOMER
    if not limit:
        return
    get_user_model().objects.select_for_update().filter(pk=customer.pk).exists()
    pending = Order.objects.filter(customer=customer.pk, status=Order.Status.PENDING).count()
    if pending >= limit:
        raise TooManyPendingOrders(
            f"You have {pending} orders waiting for confirmation, the most one customer may hold; "
            "place this one once they are confirmed or rejected (usually within seconds).",
            retry_after_s=5,
        )


def _locked(order_id: uuid.UUID) -> Order | None:
    return Order.objects.select_for_update().filter(pk=order_id).first()


def _pending_locked(order_ids: Sequence[uuid.UUID], to: str) -> dict[uuid.UUID, Order]:
    """The orders that may move to `to` now, locked until commit (in id order)."""
    orders = Order.objects.select_for_update().filter(pk__in=order_ids, status__in=Order.TRANSITIONS[to])
    return {o.pk: o for o in orders.order_by("pk").only("id", "customer_id", "total", "status")}


def order_confirm(*, order_id: uuid.UUID, caused_by: Envelope | None = None) -> bool:
    """pending -> confirmed; see order_confirm_many."""
    return bool(order_confirm_many(confirmations=[(order_id, caused_by)]))


@transaction.atomic
def order_confirm_many(*, confirmations: Sequence[tuple[uuid.UUID, Envelope | None]]) -> int:
    """pending -> confirmed for each (order id, causing event), publishing OrderConfirmed.
    An order no longer pending (cancelled while its stock was reserved) is left as it is.
    Returns how many were confirmed."""
    now = timezone.now()
    # One conditional UPDATE both moves the orders that are still pending and tells which they
    # were: an order cancelled meanwhile does not match and stays cancelled.
    confirmed = bulk.update_returning(
        Order,
        set_sql="status = %s, confirmed_at = %s, updated_at = %s",
        set_params=[Order.Status.CONFIRMED, now, now],
        key="id",
        keys=[order_id for order_id, _ in confirmations],
        where_sql=_status_in(Order.TRANSITIONS[Order.Status.CONFIRMED]),
        returning=("customer", "total"),
    )
    by_id = {order_id: (customer_id, total) for order_id, customer_id, total in confirmed}
    outbox.record_many(
        [
            (
                OrderConfirmed(order_id=order_id, customer_id=by_id[order_id][0], total=by_id[order_id][1]),
                order_id,
                cause,
            )
            for order_id, cause in confirmations
            if order_id in by_id
        ]
    )
    return len(by_id)


def _status_in(statuses: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"  # fixed choices, not input


def order_reject(*, order_id: uuid.UUID, reason: str, caused_by: Envelope | None = None) -> bool:
    """pending -> rejected; see order_reject_many."""
    return bool(order_reject_many(rejections=[(order_id, reason, caused_by)]))


@transaction.atomic
def order_reject_many(*, rejections: Sequence[tuple[uuid.UUID, str, Envelope | None]]) -> int:
    """pending -> rejected with its reason, for each (order id, reason, causing event),
    publishing OrderRejected. Returns how many were rejected."""
    orders = _pending_locked([o for o, _, _ in rejections], Order.Status.REJECTED)
    if not orders:
        return 0
    now = timezone.now()
    changed, events = [], []
    for order_id, reason, cause in rejections:
        order = orders.get(order_id)
        if order is None or order.status == Order.Status.REJECTED:
            continue
        order.status, order.rejected_at, order.updated_at, order.rejection_reason = (
            Order.Status.REJECTED,
            now,
            now,
            reason,
        )
        changed.append(order)
        events.append((OrderRejected(order_id=order_id, customer_id=order.customer_id, reason=reason), order_id, cause))
    Order.objects.bulk_update(changed, ["status", "rejected_at", "updated_at", "rejection_reason"])
    outbox.record_many(events)
    return len(changed)


@transaction.atomic
def order_cancel(*, order_id: uuid.UUID, customer: AbstractBaseUser | None = None) -> Order:
    """pending or confirmed -> cancelled, publishing OrderCancelled (inventory then releases
    the stock and the customer is notified). With `customer`, only that customer's order.

    Raises NotFound, or OrderNotCancellable if the order is rejected or already cancelled.
    """
    order = _locked(order_id)
    if order is None or (customer is not None and order.customer_id != customer.pk):
        raise NotFound("No such order.")
    if not order.cancellable:
        raise OrderNotCancellable(f"This order is {order.status} and can no longer be cancelled.")
    previous = order.status
    now = timezone.now()
    order.status, order.cancelled_at, order.updated_at = Order.Status.CANCELLED, now, now
    order.save(update_fields=["status", "cancelled_at", "updated_at"])
    items = tuple(OrderLine(product_id=p, quantity=q) for p, q in order.items.values_list("product_id", "quantity"))
    outbox.record(
        OrderCancelled(order_id=order.id, customer_id=order.customer_id, items=items, previous_status=previous),
        aggregate_id=order.id,
    )
    return order


def catalog_product_apply(*, product_id: int, sku: str, name: str, price: Decimal, active: bool, revision: int) -> None:
    """Apply a catalog change from inventory; an older revision than the one held is ignored."""
    values = {"sku": sku, "name": name, "price": price, "active": active, "revision": revision}
    updated = CatalogProduct.objects.filter(product_id=product_id, revision__lt=revision).update(**values)
    if not updated:
        CatalogProduct.objects.get_or_create(product_id=product_id, defaults=values)
