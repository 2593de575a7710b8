"""Orders the web took on the intake stream (orders.intake, see orders.intake): the orders
consumer writes them to the database in batches, effectively once.

A request the web answered "taken" (202) becomes an order whatever happens next: pending, with
OrderPlaced, when its products are on sale and its customer has room; else rejected with the
reason, with OrderRejected, so the customer hears why. The same request twice (a redelivery, or
a retry with its Idempotency-Key that also reached the database's transactional path) makes one
order: the order's id is its primary key, and an id that exists is left as it is.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

import bulk
from config.metrics import ORDERS_FINALIZED, ORDERS_PLACED, order_stage_reached, orders_counted
from eventbus import outbox
from eventbus.events import Envelope
from eventbus.transport import TransportUnavailable, get_transport
from orders.events import OrderPlaced, OrderRejected, OrderRequested
from orders.models import Order, OrderItem
from orders.selectors import catalog_products
from orders.services import CENT, MAX_ORDER_TOTAL, order_lines_errors, product_problem

__all__ = ["held_key", "order_place_requested", "received_order", "record_key"]

log = logging.getLogger(__name__)


def record_key(order_id: uuid.UUID | str) -> str:
    """Where the web keeps what it took until the database has the order (a status page reads it).
    On a Redis Cluster every key the intake's script touches ends with INTAKE_SLOT_TAG."""
    return f"orders:intake:order:{order_id}{settings.INTAKE_SLOT_TAG}"


def held_key(customer_id: int) -> str:
    """The orders a customer holds in intake (MAX_PENDING_ORDERS_PER_CUSTOMER counts them)."""
    return f"orders:intake:held:{customer_id}{settings.INTAKE_SLOT_TAG}"


def received_order(order_id: uuid.UUID) -> dict | None:
    """The order as the intake took it (orders.intake's record), while it lives; None if there is
    none or Redis does not answer."""
    try:
        raw = get_transport().intake_record(record_key(order_id))
    except TransportUnavailable:
        return None
    return None if raw is None else json.loads(raw)


def order_place_requested(requests: Sequence[Envelope[OrderRequested]]) -> int:
    """Write the orders these intake requests ask for, in the caller's transaction: one read of
    the catalog, the customers and their pending orders, one insert of orders and one of lines,
    and the events. Returns how many orders it wrote (requests whose order exists are skipped)."""
    fresh: dict[uuid.UUID, Envelope[OrderRequested]] = {}
    for envelope in requests:
        fresh.setdefault(envelope.payload.order_id, envelope)
    for (order_id,) in bulk.select(Order, ["id"], where={"id__in": list(fresh)}):
        log.debug("order %s exists already: its intake request is done", order_id, extra={"aggregate_id": order_id})
        del fresh[order_id]
    if not fresh:
        return 0
    wanted = list(fresh.values())
    customers = sorted({e.payload.customer_id for e in wanted})
    limit = settings.MAX_PENDING_ORDERS_PER_CUSTOMER
    # Locked when counting pending orders, so the transactional path cannot race past the cap.
    active = {
        pk for pk, is_active in bulk.select(get_user_model(), ["id", "is_active"], where={"id__in": customers},
                                            lock=bool(limit)) if is_active
    }  # fmt: skip
    held: dict[int, int] = {}
    if limit:
        held = dict(
            Order.objects.filter(customer__in=customers, status=Order.Status.PENDING)
            .values_list("customer")
            .annotate(n=Count("id"))
        )
    catalog = catalog_products(sorted({line.product_id for e in wanted for line in e.payload.items}))

    now = timezone.now()
    orders, lines, placed, rejected = [], [], [], []
    for envelope in wanted:
        request = envelope.payload
        if request.customer_id not in active:
            log.warning("order %s not written: customer %s is gone or inactive", request.order_id, request.customer_id)
            continue
        items = [(line.product_id, line.quantity) for line in request.items]
        known = [(p, q) for p, q in items if p in catalog]
        total = sum((catalog[p].price * q for p, q in known), Decimal("0.00")).quantize(CENT)
        reason = _refusal(items, catalog, total, held.get(request.customer_id, 0), limit)
        status = Order.Status.REJECTED if reason else Order.Status.PENDING
        if not reason:
            held[request.customer_id] = held.get(request.customer_id, 0) + 1
        orders.append(
            {
                "id": request.order_id, "customer": request.customer_id, "status": status,
                "total": total if total <= MAX_ORDER_TOTAL else Decimal("0.00"), "rejection_reason": reason,
                "created_at": envelope.occurred_at, "updated_at": now, "rejected_at": now if reason else None,
                "idempotency_key": request.idempotency_key, "request_hash": request.request_hash,
            }
        )  # fmt: skip
        lines += [
            {"order": request.order_id, "product_id": p, "sku": catalog[p].sku, "name": catalog[p].name,
             "quantity": q, "unit_price": catalog[p].price}
            for p, q in known
        ]  # fmt: skip
        (rejected if reason else placed).append((envelope, total, reason))
    if not orders:
        return 0
    bulk.insert(Order, orders)
    bulk.insert(OrderItem, lines)
    outbox.record_many(
        [
            (OrderPlaced(order_id=e.payload.order_id, customer_id=e.payload.customer_id, items=e.payload.items,
                         total=total), e.payload.order_id, e)
            for e, total, _ in placed
        ]
        + [
            (OrderRejected(order_id=e.payload.order_id, customer_id=e.payload.customer_id, reason=reason),
             e.payload.order_id, e)
            for e, _, reason in rejected
        ]
    )  # fmt: skip
    orders_counted(ORDERS_PLACED, len(orders))
    order_stage_reached("placed", (e.correlation_started_at for e, _, _ in placed))
    orders_counted(ORDERS_FINALIZED.labels(status=Order.Status.REJECTED), len(rejected))
    release = [(held_key(e.payload.customer_id), str(e.payload.order_id)) for e in wanted]
    records = [record_key(e.payload.order_id) for e in wanted]
    transaction.on_commit(functools.partial(_release, release, records), robust=True)
    return len(orders)


def _refusal(items: list[tuple[int, int]], catalog: dict, total: Decimal, held: int, limit: int) -> str:
    """Why this order cannot be placed (the rejection reason its customer reads), or ''."""
    if order_lines_errors(items):
        return "The order's lines are not valid."
    for product_id, _ in items:
        if problem := product_problem(product_id, catalog.get(product_id)):
            return problem
    if total > MAX_ORDER_TOTAL:
        return f"The order's total of {total:,.2f} is over the maximum of {MAX_ORDER_TOTAL:,.2f}."
    if limit and held >= limit:
        return f"You had {limit} orders waiting for confirmation, the most one customer may hold."
    return ""


def _release(held: list[tuple[str, str]], records: list[str]) -> None:
    """The orders are in the database: the intake's hold on them and their records go (the
    records would expire after INTAKE_RECORD_TTL_S anyway; Redis keeps only what is in intake)."""
    try:
        get_transport().intake_release(held, records)
    except TransportUnavailable:
        pass  # both expire on their own
