"""No oversell: many orders racing for little stock get exactly the stock there is, never more.

Each thread has its own database connection (Django gives every thread one), so the reservations
really run at the same time and only the database's row locking keeps them apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.db import IntegrityError, connection

from eventbus.models import DeadLetter
from eventbus.runtime.consumer import Consumer, Stats
from eventbus.runtime.relay import Relay
from inventory.models import Product, Reservation
from inventory.services import stock_reserve
from orders.models import Order
from orders.services import order_place
from tests.concurrency import run_at_once
from tests.factories import ProductFactory, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="SQLite serialises all writers; the race needs real row locking"
    ),
]

STOCK = 7
ORDERS = 40


def test_concurrent_inventory_consumers_reserve_exactly_the_stock_there_is(transport, pump):
    product = ProductFactory(stock=STOCK)
    customers = UserFactory.create_batch(4)
    for i in range(ORDERS):
        order_place(customer=customers[i % 4], items=[(product.pk, 1)])
    Relay(transport=transport).run(once=True)

    def consumer(name: str) -> Callable[[], Stats]:
        return lambda: Consumer("inventory", name=name, batch_size=3, block_ms=0, transport=transport).run(once=True)

    stats: list[Stats] = run_at_once([consumer(f"racer-{i}") for i in range(4)])  # type: ignore[assignment]

    assert sum(s.processed for s in stats) == ORDERS
    assert sum(s.retried + s.dead for s in stats) == 0, "no handler failed (an oversell would hit the constraint)"
    assert not DeadLetter.objects.exists()
    assert Reservation.objects.filter(product=product, status="reserved").count() == STOCK
    assert Product.objects.get(pk=product.pk).stock == 0
    pump()
    assert Order.objects.filter(status="confirmed").count() == STOCK
    assert Order.objects.filter(status="rejected").count() == ORDERS - STOCK


def test_stock_reserve_called_from_many_threads_at_once_never_oversells():
    product = ProductFactory(stock=STOCK)

    def reserve_five() -> list[bool]:
        try:
            return [stock_reserve(order_id=uuid.uuid4(), lines=[(product.pk, 1)]) for _ in range(5)]
        except IntegrityError as exc:  # the CheckConstraint caught a sale the UPDATE let through
            raise AssertionError(f"oversold: {exc}") from exc

    outcomes = [ok for batch in run_at_once([reserve_five] * 8) for ok in batch]  # type: ignore[union-attr]

    assert outcomes.count(True) == STOCK
    assert outcomes.count(False) == 8 * 5 - STOCK
    assert Reservation.objects.filter(product=product).count() == STOCK
    assert Product.objects.get(pk=product.pk).stock == 0
