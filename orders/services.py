"""Orders writes: placing, confirming, rejecting and cancelling orders, and the catalog copy.

Status changes only along Order.TRANSITIONS, each in one transaction with the event it
publishes (transactional outbox).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, InvalidInput, NotFound
from eventbus import outbox
from eventbus.events import Envelope
from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderRejected
from orders.models import CatalogProduct, Order, OrderItem

__all__ = [
    "MAX_LINES",
    "MAX_QUANTITY",
    "OrderNotCancellable",
    "catalog_product_apply",
    "order_cancel",
    "order_confirm",
    "order_place",
    "order_reject",
]

MAX_LINES = 100
MAX_QUANTITY = 1000


class OrderNotCancellable(Conflict):
    pass


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


@transaction.atomic
def order_place(*, customer: AbstractBaseUser, items: Sequence[tuple[int, int]]) -> Order:
    """Place an order: Order, items and OrderPlaced commit together or not at all.

    `items` is a sequence of (product_id, quantity). Prices are taken from the catalog now.
    Raises InvalidInput (per line) for unknown or inactive products and bad quantities.
    """
    _validate_lines(items)
    catalog = CatalogProduct.objects.in_bulk([p for p, _ in items])
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
    lines = [
        OrderItem(
            product_id=product_id,
            sku=catalog[product_id].sku,
            name=catalog[product_id].name,
            quantity=quantity,
            unit_price=catalog[product_id].price,
        )
        for product_id, quantity in items
    ]
    total = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
    order = Order.objects.create(customer=customer, total=total, created_at=now, updated_at=now)
    for line in lines:
        line.order = order
    OrderItem.objects.bulk_create(lines)
    outbox.record(
        OrderPlaced(
            order_id=order.id,
            customer_id=order.customer_id,
            items=tuple(OrderLine(product_id=p, quantity=q) for p, q in items),
            total=total,
        ),
        aggregate_id=order.id,
    )
    order.placed_items = lines  # the API answers with them without reading them back
    return order


def _locked(order_id: uuid.UUID) -> Order | None:
    return Order.objects.select_for_update().filter(pk=order_id).first()


@transaction.atomic
def order_confirm(*, order_id: uuid.UUID, caused_by: Envelope | None = None) -> bool:
    """pending -> confirmed, publishing OrderConfirmed. False (and nothing published) if the
    order is no longer pending, e.g. it was cancelled while stock was being reserved."""
    order = _locked(order_id)
    if order is None or order.status not in Order.TRANSITIONS[Order.Status.CONFIRMED]:
        return False
    now = timezone.now()
    order.status, order.confirmed_at, order.updated_at = Order.Status.CONFIRMED, now, now
    order.save(update_fields=["status", "confirmed_at", "updated_at"])
    outbox.record(
        OrderConfirmed(order_id=order.id, customer_id=order.customer_id, total=order.total),
        aggregate_id=order.id,
        caused_by=caused_by,
    )
    return True


@transaction.atomic
def order_reject(*, order_id: uuid.UUID, reason: str, caused_by: Envelope | None = None) -> bool:
    """pending -> rejected with the reason, publishing OrderRejected."""
    order = _locked(order_id)
    if order is None or order.status not in Order.TRANSITIONS[Order.Status.REJECTED]:
        return False
    now = timezone.now()
    order.status, order.rejected_at, order.updated_at, order.rejection_reason = Order.Status.REJECTED, now, now, reason
    order.save(update_fields=["status", "rejected_at", "updated_at", "rejection_reason"])
    outbox.record(
        OrderRejected(order_id=order.id, customer_id=order.customer_id, reason=reason),
        aggregate_id=order.id,
        caused_by=caused_by,
    )
    return True


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
