"""The orders consumer writing what the intake took (orders.taking), through the real consumer
loop (`pump`) against the test database and Redis."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from eventbus.codec import encode
from eventbus.events import Envelope
from inventory.models import Product
from notifications.models import Notification
from orders.events import OrderLine, OrderRequested
from orders.models import Order
from orders.services import derived_order_id, order_place
from orders.taking import order_place_requested
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def take(transport, customer_id: int, lines: list[tuple[int, int]], order_id: uuid.UUID | None = None) -> Envelope:
    """What the web's intake appends for one order."""
    event = OrderRequested(
        order_id=order_id or uuid.uuid4(), customer_id=customer_id,
        items=tuple(OrderLine(p, q) for p, q in lines),
    )  # fmt: skip
    envelope = Envelope.new(event, aggregate_id=str(event.order_id))
    transport.publish([(event.stream, {"type": event.type, "event": encode(envelope)})])
    return envelope


def test_an_intake_entry_delivered_twice_makes_one_order_and_one_reservation(transport, pump):
    product, customer = ProductFactory(stock=10), UserFactory()
    envelope = take(transport, customer.pk, [(product.pk, 3)])
    transport.publish([("orders.intake", {"type": envelope.type, "event": encode(envelope)})])  # the same again

    pump()

    order = Order.objects.get()
    assert order.pk == envelope.payload.order_id
    assert order.status == Order.Status.CONFIRMED
    assert Product.objects.get(pk=product.pk).stock == 7
    assert Notification.objects.filter(order_id=order.pk).count() == 1


def test_a_second_request_for_an_order_that_exists_changes_nothing(transport, pump):
    product, customer = ProductFactory(stock=10), UserFactory()
    placed = order_place(customer=customer, items=[(product.pk, 1)], idempotency_key="k")
    take(transport, customer.pk, [(product.pk, 5)], order_id=derived_order_id(customer.pk, "k"))

    pump()

    order = Order.objects.get()
    assert order.pk == placed.id
    assert order.items.get().quantity == 1
    assert Product.objects.get(pk=product.pk).stock == 9


def test_an_order_taken_for_a_product_gone_off_sale_meanwhile_is_rejected_with_the_reason(transport, pump):
    product, customer = ProductFactory(stock=10, active=False), UserFactory()
    envelope = take(transport, customer.pk, [(product.pk, 1)])

    pump()

    order = Order.objects.get(pk=envelope.payload.order_id)
    assert order.status == Order.Status.REJECTED
    assert order.rejection_reason == f"Product {product.pk} is not available."
    assert Notification.objects.filter(order_id=order.pk).count() == 1
    assert Product.objects.get(pk=product.pk).stock == 10


def test_orders_past_the_pending_limit_are_rejected_when_written(settings):
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 2
    product, customer = ProductFactory(stock=10), UserFactory()
    for _ in range(2):
        order_place(customer=customer, items=[(product.pk, 1)])  # pending: nothing confirms them here
    requested = OrderRequested(order_id=uuid.uuid4(), customer_id=customer.pk, items=(OrderLine(product.pk, 1),))

    with transaction.atomic():
        written = order_place_requested([Envelope.new(requested, aggregate_id=str(requested.order_id))])

    assert written == 1
    order = Order.objects.get(pk=requested.order_id)
    assert order.status == Order.Status.REJECTED
    assert order.rejection_reason == "You had 2 orders waiting for confirmation, the most one customer may hold."
