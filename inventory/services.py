"""Inventory writes: the catalog, stock, and reservations for orders.

Stock moves only on rows locked for the transaction (reservations) or through updates computed
by the database (F expressions: restock, release), never an unlocked read-then-write, and a
check constraint (stock >= 0) guards every write: concurrent reservations can never oversell.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

import bulk
from config.errors import InvalidInput
from config.metrics import order_stage_reached
from eventbus.messages.events import Envelope
from eventbus.store import outbox
from inventory.events import (
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    ProductChanged,
    ReservedLine,
    ShortLine,
)
from inventory.models import Product, Reservation, StockAdjustment

__all__ = [
    "MAX_STOCK",
    "StockRequest",
    "product_create",
    "product_restock",
    "product_update",
    "stock_release",
    "stock_reserve",
    "stock_reserve_many",
]


# The stock column is a 32-bit integer on PostgreSQL; keep well inside it.
MAX_STOCK = 1_000_000_000

SKU_TAKEN = "A product with this SKU already exists; choose another SKU."


def _publish_product(product: Product) -> None:
    outbox.record(
        ProductChanged(
            product_id=product.pk,
            sku=product.sku,
            name=product.name,
            price=product.price,
            active=product.active,
            revision=product.revision,
        ),
        aggregate_id=product.pk,
    )


@transaction.atomic
def product_create(*, sku: str, name: str, price: Decimal, stock: int = 0, active: bool = True) -> Product:
    """Create a product with its initial stock; raises InvalidInput if the SKU is taken (also
    when two requests race for the same SKU: the unique index decides)."""
    if not 0 <= stock <= MAX_STOCK:
        raise InvalidInput({"stock": [f"Stock must be between 0 and {MAX_STOCK}."]})
    try:
        with transaction.atomic():
            product = Product.objects.create(sku=sku, name=name, price=price, stock=stock, active=active)
    except IntegrityError:
        if Product.objects.filter(sku=sku).exists():
            raise InvalidInput({"sku": [SKU_TAKEN]}) from None
        raise
    if stock:
        StockAdjustment.objects.create(product=product, delta=stock, reason=StockAdjustment.Reason.INITIAL)
    _publish_product(product)
    return product


@transaction.atomic
def product_update(
    *,
    product_id: int,
    name: str | None = None,
    price: Decimal | None = None,
    active: bool | None = None,
    stock: int | None = None,
) -> Product:
    """Change catalog data and, optionally, set the stock to a counted figure (a correction)."""
    product = Product.objects.select_for_update().get(pk=product_id)
    catalog_changed = False
    for field, value in (("name", name), ("price", price), ("active", active)):
        if value is not None and getattr(product, field) != value:
            setattr(product, field, value)
            catalog_changed = True
    if stock is not None and stock != product.stock:
        StockAdjustment.objects.create(
            product=product, delta=stock - product.stock, reason=StockAdjustment.Reason.CORRECTION
        )
        product.stock = stock
    if catalog_changed:
        product.revision += 1
    product.save()
    if catalog_changed:
        _publish_product(product)
    return product


@transaction.atomic
def product_restock(*, product_id: int, quantity: int) -> Product:
    """Add stock; raises InvalidInput if the stock would pass MAX_STOCK."""
    if quantity <= 0:
        raise InvalidInput({"quantity": ["Restock quantity must be positive."]})
    updated = Product.objects.filter(pk=product_id, stock__lte=MAX_STOCK - quantity).update(
        stock=F("stock") + quantity, updated_at=timezone.now()
    )
    if not updated:
        if not Product.objects.filter(pk=product_id).exists():
            raise Product.DoesNotExist(f"product {product_id} does not exist")
        raise InvalidInput({"quantity": [f"Stock would pass the maximum of {MAX_STOCK}."]})
    StockAdjustment.objects.create(product_id=product_id, delta=quantity, reason=StockAdjustment.Reason.RESTOCK)
    return Product.objects.get(pk=product_id)


def _merge(lines: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """One entry per product, in product id order: a fixed lock order avoids deadlocks."""
    totals: Counter[int] = Counter()
    for product_id, quantity in lines:
        totals[product_id] += quantity
    return sorted(totals.items())


@dataclass(frozen=True)
class StockRequest:
    """An order's lines (product id, quantity), and the event that asks for them."""

    order_id: uuid.UUID
    lines: tuple[tuple[int, int], ...]
    caused_by: Envelope | None = None


def stock_reserve(*, order_id: uuid.UUID, lines: Iterable[tuple[int, int]], caused_by: Envelope | None = None) -> bool:
    """Reserve every line of one order or none; see stock_reserve_many."""
    return stock_reserve_many(requests=[StockRequest(order_id, tuple(lines), caused_by)])[0]


@transaction.atomic
def stock_reserve_many(*, requests: Sequence[StockRequest]) -> list[bool]:
    """Reserve every line of each order or none, in the given order, and publish each outcome:
    InventoryReserved, or InventoryReservationFailed with the reason and the short lines.

    Never oversells: every product the batch touches is locked first (selected for update in
    id order on PostgreSQL; SQLite holds its write lock for the whole transaction), so the
    stock read here cannot change until commit, and the CHECK constraint (stock >= 0) guards the
    write. A fixed number of queries per batch, whatever its size. An order that already has
    reservations (or tombstones from a cancellation that overtook it) is skipped. Returns, per
    request, whether it was reserved now.
    """
    merged = [(r, _merge(r.lines)) for r in requests]
    wanted = sorted({p for _, lines in merged for p, _ in lines})
    # Both reads, then the writes, in as few round trips as the database allows (pipeline).
    with bulk.pipelined():
        handled_query = bulk.Select(
            Reservation, ["order_id"], where={"order_id__in": [r.order_id for r in requests]}
        ).send()
        locked_query = bulk.Select(
            Product, ["id", "stock", "active"], where={"id__in": wanted}, lock=True, order_by="id"
        ).send()
        handled = {order_id for (order_id,) in handled_query.rows()}
        stock = {pk: (level if active else None) for pk, level, active in locked_query.rows()}
        todo = [(r, lines) for r, lines in merged if r.order_id not in handled]
        if not todo:
            return [False] * len(requests)
        now = timezone.now()
        reserved: set[uuid.UUID] = set()
        reservations: list[Reservation] = []
        events: list[tuple[object, uuid.UUID, Envelope | None]] = []
        for request, lines in todo:
            short = [(p, q) for p, q in lines if stock.get(p) is None or stock[p] < q]
            if short:
                short_lines = tuple(ShortLine(product_id=p, requested=q, available=stock.get(p) or 0) for p, q in short)
                available = {p: v for p, v in stock.items() if v is not None}
                reason = _shortage_reason(short_lines, available)
                event = InventoryReservationFailed(order_id=request.order_id, reason=reason, short_lines=short_lines)
                events.append((event, request.order_id, request.caused_by))
                continue
            for p, q in lines:
                stock[p] -= q  # type: ignore[operator]
            reservations += [
                Reservation(order_id=request.order_id, product_id=p, quantity=q, created_at=now) for p, q in lines
            ]
            reserved_lines = tuple(ReservedLine(product_id=p, quantity=q) for p, q in lines)
            events.append(
                (
                    InventoryReserved(order_id=request.order_id, lines=reserved_lines),
                    request.order_id,
                    request.caused_by,
                )
            )
            reserved.add(request.order_id)

        if reservations:
            bulk.update_each(Product, "stock", {r.product_id: stock[r.product_id] for r in reservations})
            bulk.insert(
                Reservation,
                [
                    {"order_id": r.order_id, "product": r.product_id, "quantity": r.quantity,
                     "status": Reservation.Status.RESERVED, "created_at": now}
                    for r in reservations
                ],
            )  # fmt: skip
        outbox.record_many(events)  # type: ignore[arg-type]
    order_stage_reached(
        "reserved", (r.caused_by.correlation_started_at for r in requests if r.order_id in reserved and r.caused_by)
    )
    return [r.order_id in reserved for r in requests]


def _shortage_reason(short_lines: tuple[ShortLine, ...], active: dict[int, int]) -> str:
    parts = []
    for line in short_lines:
        if line.product_id not in active:
            parts.append(f"product {line.product_id} is not available")
        else:
            parts.append(f"product {line.product_id}: {line.requested} requested, {line.available} in stock")
    return "insufficient stock: " + "; ".join(parts)


@transaction.atomic
def stock_release(*, order_id: uuid.UUID, lines: Iterable[tuple[int, int]], caused_by: Envelope | None = None) -> int:
    """Give back an order's reserved stock (the order was cancelled) and publish
    InventoryReleased. For lines never reserved, leave a released tombstone so a late
    OrderPlaced reserves nothing. Returns the number of lines released."""
    merged = _merge(lines)
    existing = {r.product_id: r for r in Reservation.objects.select_for_update().filter(order_id=order_id)}
    now = timezone.now()
    released: list[ReservedLine] = []
    tombstones = []
    known = set(Product.objects.filter(pk__in=[p for p, _ in merged]).values_list("pk", flat=True))
    for product_id, quantity in merged:
        reservation = existing.get(product_id)
        if reservation is None:
            if product_id in known:
                tombstones.append(
                    Reservation(
                        order_id=order_id, product_id=product_id, quantity=quantity,
                        status=Reservation.Status.RELEASED, created_at=now, released_at=now,
                    )
                )  # fmt: skip
            continue
        if reservation.status != Reservation.Status.RESERVED:
            continue
        Product.objects.filter(pk=product_id).update(stock=F("stock") + reservation.quantity)
        reservation.status = Reservation.Status.RELEASED
        reservation.released_at = now
        reservation.save(update_fields=["status", "released_at"])
        released.append(ReservedLine(product_id=product_id, quantity=reservation.quantity))
    Reservation.objects.bulk_create(tombstones)
    if released:
        outbox.record(
            InventoryReleased(order_id=order_id, lines=tuple(released)), aggregate_id=order_id, caused_by=caused_by
        )
    return len(released)
