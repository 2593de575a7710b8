"""Events the orders app publishes: the contract other apps may import."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from eventbus.events import Event

STREAM = "orders"


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int

    def __post_init__(self) -> None:
        if self.product_id < 1 or self.quantity < 1:
            raise ValueError("product_id and quantity must be positive")


@dataclass(frozen=True)
class OrderPlaced(Event):
    type = "orders.OrderPlaced"
    version = 1
    stream = STREAM
    aggregate_type = "order"

    order_id: uuid.UUID
    customer_id: int
    items: tuple[OrderLine, ...]
    total: Decimal


@dataclass(frozen=True)
class OrderConfirmed(Event):
    type = "orders.OrderConfirmed"
    version = 1
    stream = STREAM
    aggregate_type = "order"

    order_id: uuid.UUID
    customer_id: int
    total: Decimal


@dataclass(frozen=True)
class OrderRejected(Event):
    type = "orders.OrderRejected"
    version = 1
    stream = STREAM
    aggregate_type = "order"

    order_id: uuid.UUID
    customer_id: int
    reason: str


@dataclass(frozen=True)
class OrderCancelled(Event):
    type = "orders.OrderCancelled"
    version = 1
    stream = STREAM
    aggregate_type = "order"

    order_id: uuid.UUID
    customer_id: int
    items: tuple[OrderLine, ...]
    previous_status: str
