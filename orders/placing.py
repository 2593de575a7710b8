"""Placing orders: the one place its rules are written, and the one writer every path calls.

The API's view (one order per transaction) and the web's order desk (orders.desk: the orders
that arrive within a few milliseconds, in one transaction) both call `place_many`; the orders API
renders what it returns with one representation (orders.api.serializers.OrderSerializer), for
201 and GET alike. The rules, in the order they are checked:

1. the lines (order_lines_errors): 1 to MAX_LINES, each product once, quantities 1 to MAX_QUANTITY;
2. the customer is active (a token cached by the web may outlive its user's deactivation);
3. an Idempotency-Key used before: the same lines within IDEMPOTENCY_WINDOW answer with the order
   placed first (`replayed`); other lines, or a key older than the window, are refused;
4. every product exists and is on sale in the catalog copy, at its price now;
5. the total fits an order (MAX_ORDER_TOTAL);
6. the customer holds fewer than MAX_PENDING_ORDERS_PER_CUSTOMER pending orders (their user row
   is locked while counting, so racing placements are counted one after the other).

An order placed is written `pending` with its lines and OrderPlaced in the outbox, in the
caller's transaction: once that commits, the order exists in the database whatever happens to
Redis (which only carries the event, and the outbox publishes it again if Redis loses it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections import Counter
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
from config.errors import DomainError, InvalidInput, LimitReached, Unauthenticated, Unprocessable
from config.metrics import ORDERS_PLACED, orders_counted
from eventbus.store import outbox
from orders.events import OrderLine, OrderPlaced
from orders.models import Order, OrderItem
from orders.selectors import catalog_entries, catalog_select

__all__ = [
    "CENT", "IDEMPOTENCY_WINDOW", "MAX_LINES", "MAX_ORDER_TOTAL", "MAX_PRODUCT_ID", "MAX_QUANTITY",
    "CustomerInactive", "IdempotencyKeyReused", "PlaceRequest", "PlacedLine", "PlacedOrder", "TooManyPendingOrders",
    "derived_order_id", "lines_hash", "order_lines_errors", "order_place", "order_url", "place_many", "product_problem",
    "total_problem",
]  # fmt: skip

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
PENDING_RETRY_AFTER_S = 5


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


class TooManyPendingOrders(LimitReached):
    code = "too_many_pending_orders"


class CustomerInactive(Unauthenticated):
    """The customer was deactivated or deleted after their token was read (the web caches
    tokens for AUTH_TOKEN_CACHE_S): nothing is placed and the client hears why."""


# --- the rules ------------------------------------------------------------------------------------


def order_lines_errors(items: Sequence[tuple[int, int]]) -> dict[str, Any] | None:
    """The rules an order's lines follow: errors in the API's shape (messages about the list,
    or one dict per line in order, `{}` for a good line), or None if the lines are good."""
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


def total_problem(total: Decimal) -> str:
    """Why an order cannot have this total, or ''."""
    if total > MAX_ORDER_TOTAL:
        return (
            f"The order's total of {total:,.2f} is over the maximum of {MAX_ORDER_TOTAL:,.2f}; "
            "split it into several orders."
        )
    return ""


def derived_order_id(customer_id: int, idempotency_key: str) -> uuid.UUID:
    """The id of the order a customer places with this Idempotency-Key, wherever it is placed."""
    return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{customer_id}:{idempotency_key}")


def lines_hash(items: Sequence[tuple[int, int]]) -> str:
    """What a retry with the same Idempotency-Key must ask for again, as a hash."""
    return hashlib.sha256(json.dumps([[p, q] for p, q in items]).encode()).hexdigest()


def _too_many_pending(limit: int) -> TooManyPendingOrders:
    return TooManyPendingOrders(
        f"You have {limit} orders waiting for confirmation, the most one customer may hold; "
        "place this one once they are confirmed or rejected (usually within seconds).",
        retry_after_s=PENDING_RETRY_AFTER_S,
    )


def _key_reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "This Idempotency-Key was already used for an order with other items; use a new key for a different order."
    )


def _key_expired() -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f"This Idempotency-Key was used more than {IDEMPOTENCY_WINDOW.total_seconds() / 3600:g} hours ago; "
        "use a new key for a new order."
    )


# --- what placing takes and answers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    """One order asked for: (product_id, quantity) lines, and the request's id, which becomes the
    correlation id of every event the order causes."""

    customer_id: int
    items: tuple[tuple[int, int], ...]
    idempotency_key: str = ""
    origin: outbox.Origin | None = None  # the web request, where it is not the one in hand


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
    replayed Idempotency-Key, as the first placement left it and the pipeline moved it since).
    It has the attributes of an Order, so the API renders both the same way."""

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

    @property
    def url(self) -> str:
        return order_url(self.id)


def order_url(order_id: uuid.UUID) -> str:
    """Where the API shows an order (its Location, and `url` in its body)."""
    return f"/api/orders/{order_id}/"


# --- the writer ---------------------------------------------------------------------------------------


def order_place(
    *, customer: AbstractBaseUser, items: Sequence[tuple[int, int]], idempotency_key: str = ""
) -> PlacedOrder:
    """Place one order in its own transaction; raises the DomainError that refuses it."""
    (outcome,) = place_committed([PlaceRequest(customer.pk, tuple(items), idempotency_key)])
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


def place_committed(requests: Sequence[PlaceRequest]) -> list[PlacedOrder | DomainError]:
    """place_many in a transaction of its own, committed when this returns. Two transactions
    racing to place the same Idempotency-Key: the second's insert waits for the first and
    fails, and the batch is placed again, where it now finds the order placed first."""
    for attempt in range(3):
        try:
            with transaction.atomic(), bulk.pipelined():
                return place_many(requests)
        except IntegrityError:
            if attempt == 2 or not any(r.idempotency_key for r in requests):
                raise
    raise AssertionError("unreachable")


def place_many(requests: Sequence[PlaceRequest]) -> list[PlacedOrder | DomainError]:
    """Place these orders in the caller's transaction: for each request, in its order, the
    order placed (or replayed), or the DomainError that refuses it. One read of the customers
    (locked), their pending orders, the orders their Idempotency-Keys name and the catalog; one
    insert of orders, one of lines and one of events."""
    outcomes: list[PlacedOrder | DomainError | None] = [None] * len(requests)
    ids: list[uuid.UUID] = []
    for i, request in enumerate(requests):
        errors = order_lines_errors(request.items)
        if errors:
            outcomes[i] = InvalidInput(errors)
        key = request.idempotency_key
        ids.append(derived_order_id(request.customer_id, key) if key else uuid.uuid4())
    wanted = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if not wanted:
        return outcomes  # type: ignore[return-value]

    customers = sorted({requests[i].customer_id for i in wanted})
    limit = settings.MAX_PENDING_ORDERS_PER_CUSTOMER
    # Locked (in id order, so two batches never wait on each other in a circle) while the pending
    # orders are counted; on PostgreSQL FOR NO KEY UPDATE, which lets other transactions insert
    # rows that refer to the customer (notifications, orders) meanwhile.
    active = bulk.Select(get_user_model(), ["id", "is_active"], where={"id__in": customers}, lock=True,
                         order_by="id").send()  # fmt: skip
    keyed = [ids[i] for i in wanted if requests[i].idempotency_key]
    earlier = bulk.Select(Order, ["id", "customer", "request_hash", "created_at"], where={"id__in": keyed}).send() \
        if keyed else None  # fmt: skip
    # Every read goes out before the first answer is read: one round trip (bulk.pipelined).
    pending = bulk.Select(Order, ["customer"], where={"customer__in": customers, "status": Order.Status.PENDING}) \
        .send() if limit else None  # fmt: skip
    products = catalog_select(sorted({p for i in wanted for p, _ in requests[i].items})).send()
    active_ids = {pk for pk, is_active in active.rows() if is_active}
    earlier_orders = {row[0]: row for row in earlier.rows()} if earlier is not None else {}
    held = Counter(customer for (customer,) in pending.rows()) if pending is not None else Counter()
    catalog = catalog_entries(products)

    now = timezone.now()
    placed: dict[uuid.UUID, PlacedOrder] = {}
    order_rows, line_rows, events = [], [], []
    for i in wanted:
        request, order_id = requests[i], ids[i]
        outcome = _check(request, order_id, active_ids, earlier_orders, placed, catalog, held, limit)
        if outcome is not None:
            outcomes[i] = outcome
            continue
        lines = tuple(PlacedLine(p, catalog[p].sku, catalog[p].name, q, catalog[p].price) for p, q in request.items)
        total = sum((line.line_total for line in lines), Decimal("0.00")).quantize(CENT)
        if problem := total_problem(total):
            outcomes[i] = InvalidInput({"items": [problem]})
            continue
        held[request.customer_id] = held.get(request.customer_id, 0) + 1
        order = PlacedOrder(id=order_id, customer_id=request.customer_id, status=Order.Status.PENDING, total=total,
                            items=lines, created_at=now, updated_at=now)  # fmt: skip
        placed[order_id] = outcomes[i] = order
        order_rows.append({
            "id": order_id, "customer": request.customer_id, "status": Order.Status.PENDING, "total": total,
            "rejection_reason": "", "created_at": now, "updated_at": now,
            "idempotency_key": request.idempotency_key,
            "request_hash": lines_hash(request.items) if request.idempotency_key else "",
        })  # fmt: skip
        line_rows += [
            {"order": order_id, "product_id": line.product_id, "sku": line.sku, "name": line.name,
             "quantity": line.quantity, "unit_price": line.unit_price}
            for line in lines
        ]  # fmt: skip
        events.append((
            OrderPlaced(order_id=order_id, customer_id=request.customer_id,
                        items=tuple(OrderLine(p, q) for p, q in request.items), total=total),
            order_id, None, request.origin,
        ))  # fmt: skip
    if order_rows:
        bulk.insert(Order, order_rows)
        bulk.insert(OrderItem, line_rows)
        origins = [e[3] for e in events]
        outbox.record_many([e[:3] for e in events], origins=origins if all(origins) else None)
        orders_counted(ORDERS_PLACED, len(order_rows))
        if log.isEnabledFor(logging.DEBUG):
            for event, _, _, origin in events:
                extra = {"aggregate_id": str(event.order_id)}
                if origin is not None:
                    extra["request_id"] = extra["correlation_id"] = str(origin.correlation_id)
                log.debug("order %s placed: %d line(s), total %s (one of %d in its transaction)", event.order_id,
                          len(event.items), event.total, len(events), extra=extra)  # fmt: skip
    return outcomes  # type: ignore[return-value]


def _check(
    request: PlaceRequest,
    order_id: uuid.UUID,
    active: set[int],
    earlier: dict[uuid.UUID, tuple],
    placed: dict[uuid.UUID, PlacedOrder],
    catalog: dict,
    held: dict[int, int],
    limit: int,
) -> PlacedOrder | DomainError | None:
    """Rules 2 to 6 (see the module) for one request; None if the order may be placed."""
    if request.customer_id not in active:
        return CustomerInactive("User inactive or deleted.")
    if request.idempotency_key:
        request_hash = lines_hash(request.items)
        if order_id in placed:  # the same key twice in one batch: the second is a replay
            first = placed[order_id]
            same = lines_hash([(line.product_id, line.quantity) for line in first.items]) == request_hash
            return _replace(first) if same else _key_reused()
        if order_id in earlier:
            _, _, earlier_hash, created_at = earlier[order_id]
            if earlier_hash != request_hash:
                return _key_reused()
            if timezone.is_naive(created_at):  # as a raw row may read it: the database keeps UTC
                created_at = timezone.make_aware(created_at, dt.UTC)
            if created_at < timezone.now() - IDEMPOTENCY_WINDOW:
                return _key_expired()
            return _replay(order_id)
    errors = []
    for product_id, _ in request.items:
        problem = product_problem(product_id, catalog.get(product_id))
        errors.append({"product_id": [problem]} if problem else {})
    if any(errors):
        return InvalidInput({"items": errors})
    if limit and held.get(request.customer_id, 0) >= limit:
        return _too_many_pending(limit)
    return None


def _replace(order: PlacedOrder) -> PlacedOrder:
    return PlacedOrder(**{**{f: getattr(order, f) for f in PlacedOrder.__slots__}, "replayed": True})


def _replay(order_id: uuid.UUID) -> PlacedOrder:
    """The order first placed with this key, as it is now."""
    order = Order.objects.prefetch_related("items").get(pk=order_id)
    return PlacedOrder(
        id=order.id, customer_id=order.customer_id, status=order.status, total=order.total,
        items=tuple(PlacedLine(i.product_id, i.sku, i.name, i.quantity, i.unit_price) for i in order.items.all()),
        created_at=order.created_at, updated_at=order.updated_at, rejection_reason=order.rejection_reason,
        confirmed_at=order.confirmed_at, rejected_at=order.rejected_at, cancelled_at=order.cancelled_at,
        replayed=True,
    )  # fmt: skip
