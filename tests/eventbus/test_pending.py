"""A message read but never acknowledged before its consumer stopped is processed when it restarts.

(Claiming what a dead consumer left behind, XAUTOCLAIM, is covered in tests/resilience.)"""

from __future__ import annotations

import pytest

from eventbus.runtime.consumer import Consumer
from inventory.models import Product, Reservation
from orders.services import order_place
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def pending(transport, group: str) -> list[dict]:
    return transport.client.xpending_range(transport.key("orders"), group, min="-", max="+", count=10)


def test_message_read_but_not_acknowledged_is_processed_when_the_same_consumer_restarts(customer, transport, relay):
    product = ProductFactory(stock=5)
    order = order_place(customer=customer, items=[(product.pk, 2)])
    relay()
    # The previous run of "c1" read the message and stopped before handling it.
    (message,) = transport.read("inventory", "c1", {"orders": ">"}, count=10, block_ms=None)
    assert [(p["message_id"].decode(), p["consumer"].decode()) for p in pending(transport, "inventory")] == [
        (message.id, "c1")
    ]

    stats = Consumer("inventory", name="c1", block_ms=0, transport=transport).run(once=True)

    assert stats.processed == 1
    assert Product.objects.get(pk=product.pk).stock == 3
    assert Reservation.objects.filter(order_id=order.id).count() == 1
    assert pending(transport, "inventory") == []


def test_blocking_reads_of_varying_length_share_one_connection(transport):
    transport.ensure_group("orders", "inventory")
    for block_ms in (5, 17, 230, 999, 1):
        transport.read("inventory", "c1", {"orders": ">"}, count=1, block_ms=block_ms)

    assert len(transport._blocking) == 1
    (client,) = transport._blocking.values()
    assert len(client.connection_pool._available_connections) + len(client.connection_pool._in_use_connections) == 1
