"""Events inventory publishes: the contract other apps may import."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from eventbus.messages.events import Event
from orders.events import OrderLine

# The lines inventory reserves and releases are the order's lines: one class, one set of checks.
ReservedLine = OrderLine


class InventoryEvent(Event, stream="inventory", aggregate_type="reservation", prefix="inventory"):
    """What inventory publishes: on stream "inventory", types named "inventory.<class name>"."""


@dataclass(frozen=True)
class ShortLine:
    product_id: int
    requested: int
    available: int

    def __post_init__(self) -> None:
        if self.requested < 1 or self.available < 0:
            raise ValueError("requested must be positive and available not negative")


@dataclass(frozen=True)
class InventoryReserved(InventoryEvent):
    order_id: uuid.UUID
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True)
class InventoryReservationFailed(InventoryEvent):
    order_id: uuid.UUID
    reason: str
    short_lines: tuple[ShortLine, ...]


@dataclass(frozen=True)
class InventoryReleased(InventoryEvent):
    order_id: uuid.UUID
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True)
class ProductChanged(InventoryEvent, aggregate_type="product"):
    """A product was created or its catalog data (name, price, active) changed."""

    product_id: int
    sku: str
    name: str
    price: Decimal
    active: bool
    revision: int
