"""API answers that depend on what the consumers did: needs committed transactions and `pump`."""

from __future__ import annotations

import pytest

from eventbus.models import OutboxEvent
from inventory.models import Product
from orders.models import Order
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_cancelling_a_rejected_order_is_409_with_a_detail(api, place_order, pump):
    lamp = ProductFactory(stock=1)
    placed = place_order(api, (lamp.pk, 2))
    pump()
    assert Order.objects.get(pk=placed["id"]).status == "rejected"
    events_before = OutboxEvent.objects.count()

    response = api.post(f"/api/orders/{placed['id']}/cancel/")

    assert response.status_code == 409
    assert response.json()["detail"] == "This order is rejected and can no longer be cancelled."
    assert Order.objects.get(pk=placed["id"]).status == "rejected"
    assert OutboxEvent.objects.count() == events_before


def test_confirmed_order_reads_back_as_confirmed_with_its_timestamp(api, place_order, pump):
    lamp = ProductFactory(stock=5)
    placed = place_order(api, (lamp.pk, 2))
    pump()

    body = api.get(f"/api/orders/{placed['id']}/").json()

    assert body["status"] == "confirmed"
    assert body["confirmed_at"]
    assert Product.objects.get(pk=lamp.pk).stock == 3
