"""Events the orders app publishes: the contract other apps may import."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from eventbus.messages.events import Event


class OrderEvent(Event, stream="orders", aggregate_type="order", prefix="orders"):
    """What the orders app publishes: on stream "orders", types named "orders.<class name>"."""


@dataclass(frozen=True)
class OrderLine:
    """A quantity of one product; inventory's events carry the same lines."""

    product_id: int
    quantity: int

    def __post_init__(self) -> None:
        if self.product_id < 1 or self.quantity < 1:
            raise ValueError("product_id and quantity must be positive")


@dataclass(frozen=True)
class OrderPlaced(OrderEvent):
    order_id: uuid.UUID
    customer_id: int
    items: tuple[OrderLine, ...]
    total: Decimal


@dataclass(frozen=True)
class OrderConfirmed(OrderEvent):
    order_id: uuid.UUID
    customer_id: int
    total: Decimal


@dataclass(frozen=True)
class OrderRejected(OrderEvent):
    order_id: uuid.UUID
    customer_id: int
    reason: str


@dataclass(frozen=True)
class OrderCancelled(OrderEvent):
    order_id: uuid.UUID
    customer_id: int
    items: tuple[OrderLine, ...]
    previous_status: str
