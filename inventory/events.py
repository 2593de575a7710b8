"""Events inventory publishes: the contract other apps may import."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from eventbus.events import Event

STREAM = "inventory"


@dataclass(frozen=True)
class ReservedLine:
    product_id: int
    quantity: int

    def __post_init__(self) -> None:
        if self.product_id < 1 or self.quantity < 1:
            raise ValueError("product_id and quantity must be positive")


@dataclass(frozen=True)
class ShortLine:
    product_id: int
    requested: int
    available: int

    def __post_init__(self) -> None:
        if self.requested < 1 or self.available < 0:
            raise ValueError("requested must be positive and available not negative")


@dataclass(frozen=True)
class InventoryReserved(Event):
    type = "inventory.InventoryReserved"
    version = 1
    stream = STREAM
    aggregate_type = "reservation"

    order_id: uuid.UUID
    lines: tuple[ReservedLine, ...]


@dataclass(frozen=True)
class InventoryReservationFailed(Event):
    type = "inventory.InventoryReservationFailed"
    version = 1
    stream = STREAM
    aggregate_type = "reservation"

    order_id: uuid.UUID
    reason: str
    short_lines: tuple[ShortLine, ...]


@dataclass(frozen=True)
class InventoryReleased(Event):
    type = "inventory.InventoryReleased"
    version = 1
    stream = STREAM
    aggregate_type = "reservation"

    order_id: uuid.UUID
    lines: tuple[ReservedLine, ...]


@dataclass(frozen=True)
class ProductChanged(Event):
    """A product was created or its catalog data (name, price, active) changed."""

    type = "inventory.ProductChanged"
    version = 1
    stream = STREAM
    aggregate_type = "product"

    product_id: int
    sku: str
    name: str
    price: Decimal
    active: bool
    revision: int
