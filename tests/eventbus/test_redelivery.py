"""Effectively-once effects: the same event delivered again (a duplicate XADD, as a relay that
crashed between XADD and commit would publish) changes nothing."""

from __future__ import annotations

import pytest
from django.core import mail

from eventbus.models import OutboxEvent, ProcessedEvent
from inventory.events import InventoryReserved
from inventory.models import Product, Reservation
from notifications.models import Notification
from orders.events import OrderConfirmed, OrderPlaced
from orders.services import order_place
from tests.factories import ProductFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_only")]


def publish_again(transport, stream: str, event_type: str) -> None:
    """XADD the very same fields of the stream's entry of this type once more."""
    (fields,) = [f for _, f in transport.client.xrange(transport.key(stream)) if f[b"type"] == event_type.encode()]
    transport.client.xadd(transport.key(stream), fields)


def pending(transport, stream: str, group: str) -> int:
    return transport.client.xpending(transport.key(stream), group)["pending"]


def test_order_placed_delivered_twice_reserves_stock_once(customer, transport, relay, consume):
    product = ProductFactory(stock=5)
    order = order_place(customer=customer, items=[(product.pk, 2)])
    relay()
    assert consume("inventory").processed == 1

    publish_again(transport, "orders", OrderPlaced.type)
    stats = consume("inventory")

    assert (stats.processed, stats.duplicates) == (0, 1)
    assert Product.objects.get(pk=product.pk).stock == 3
    assert list(Reservation.objects.filter(order_id=order.id).values_list("product_id", "quantity", "status")) == [
        (product.pk, 2, "reserved")
    ]
    assert OutboxEvent.objects.filter(event_type=InventoryReserved.type, aggregate_id=str(order.id)).count() == 1
    assert ProcessedEvent.objects.filter(consumer_group="inventory").count() == 1
    assert pending(transport, "orders", "inventory") == 0, "the duplicate is acknowledged"


def test_order_confirmed_delivered_twice_sends_one_notification_and_one_email(customer, transport, pump, consume):
    product = ProductFactory(stock=5)
    order = order_place(customer=customer, items=[(product.pk, 1)])
    pump()
    assert len(mail.outbox) == 1

    publish_again(transport, "orders", OrderConfirmed.type)
    stats = consume("notifications")

    assert (stats.processed, stats.duplicates) == (0, 1)
    assert [n.kind for n in Notification.objects.filter(order_id=order.id)] == ["order_confirmed"]
    assert len(mail.outbox) == 1
    assert pending(transport, "orders", "notifications") == 0


def test_two_copies_of_one_event_in_one_batch_are_applied_once(customer, transport, relay, consume):
    product = ProductFactory(stock=5)
    order = order_place(customer=customer, items=[(product.pk, 2)])
    relay()
    publish_again(transport, "orders", OrderPlaced.type)
    assert transport.client.xlen(transport.key("orders")) == 2

    stats = consume("inventory")

    assert (stats.processed, stats.duplicates) == (1, 1)
    assert Product.objects.get(pk=product.pk).stock == 3
    assert Reservation.objects.filter(order_id=order.id).count() == 1
    assert OutboxEvent.objects.filter(event_type=InventoryReserved.type, aggregate_id=str(order.id)).count() == 1
    assert pending(transport, "orders", "inventory") == 0
