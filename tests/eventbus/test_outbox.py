"""The transactional outbox: an event exists if and only if the transaction that caused it
committed."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import transaction

from eventbus.messages.codec import decode
from eventbus.models import OutboxEvent
from eventbus.store import outbox
from orders.events import OrderConfirmed, OrderLine, OrderPlaced
from orders.models import Order, OrderItem
from orders.services import order_place
from tests.factories import ProductFactory

# transaction=True: without it the whole test runs inside one atomic block, and neither a real
# commit nor "outside a transaction" could be observed.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_only")]


class PaymentDeclined(Exception):
    """Something later in the caller's transaction fails after the order was placed."""


def checkout(**placement: object) -> None:
    """A caller that places an order in its own transaction, then fails before committing."""
    with transaction.atomic():
        order_place(**placement)  # type: ignore[arg-type]
        assert Order.objects.count() == 1, "the placement was written before the rollback"
        assert OutboxEvent.objects.filter(event_type=OrderPlaced.type).count() == 1
        raise PaymentDeclined


def test_placement_rolled_back_by_the_caller_leaves_no_order_items_or_outbox_event(customer):
    product = ProductFactory(stock=5)
    outbox_before = set(OutboxEvent.objects.values_list("id", flat=True))

    with pytest.raises(PaymentDeclined):
        checkout(customer=customer, items=[(product.pk, 2)])

    assert not Order.objects.exists()
    assert not OrderItem.objects.exists()
    assert set(OutboxEvent.objects.values_list("id", flat=True)) == outbox_before


def test_recording_an_event_outside_a_transaction_raises_outside_transaction(customer):
    event = OrderConfirmed(order_id=uuid.uuid4(), customer_id=customer.pk, total=Decimal("10.00"))

    with pytest.raises(outbox.OutsideTransaction, match=r"transaction\.atomic"):
        outbox.record(event, aggregate_id=event.order_id)

    assert not OutboxEvent.objects.filter(event_type=OrderConfirmed.type).exists()


def test_committed_placement_leaves_one_order_placed_row_whose_body_decodes_to_the_order(customer):
    keyboard = ProductFactory(stock=5, price=Decimal("20.00"))
    mouse = ProductFactory(stock=3, price=Decimal("7.50"))

    order = order_place(customer=customer, items=[(keyboard.pk, 2), (mouse.pk, 1)])

    (row,) = OutboxEvent.objects.filter(event_type=OrderPlaced.type)
    assert (row.stream, row.aggregate_type, row.aggregate_id) == ("orders", "order", str(order.id))
    envelope = decode(row.body)
    assert envelope.event_id == row.event_id
    assert envelope.aggregate_id == str(order.id)
    assert envelope.correlation_id == envelope.event_id, "a placement starts its own correlation"
    assert envelope.causation_id is None
    assert envelope.payload == OrderPlaced(
        order_id=order.id,
        customer_id=customer.pk,
        items=(OrderLine(product_id=keyboard.pk, quantity=2), OrderLine(product_id=mouse.pk, quantity=1)),
        total=Decimal("47.50"),
    )
