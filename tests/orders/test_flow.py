"""The whole order flow through the API, relay and consumers, on the real database and Redis."""

from __future__ import annotations

import pytest
from django.core import mail
from rest_framework.test import APIClient

from inventory.models import Product, Reservation
from notifications.models import Notification
from orders.models import Order
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def forced_api(customer) -> APIClient:
    """The customer's client, authentication forced (no token): the flow is under test here,
    not signing in (tests/api's `api` fixture signs in with a real token)."""
    client = APIClient()
    client.force_authenticate(customer)
    return client


def test_order_in_stock_is_confirmed_stock_drops_and_customer_gets_one_email(forced_api, place_order, customer, pump):
    keyboard = ProductFactory(stock=5, price="20.00")
    mouse = ProductFactory(stock=3, price="7.50")

    order = place_order(forced_api, (keyboard.pk, 2), (mouse.pk, 1))
    assert order["status"] == "pending"
    assert order["total"] == "47.50"

    pump()

    assert forced_api.get(f"/api/orders/{order['id']}/").json()["status"] == "confirmed"
    assert Product.objects.get(pk=keyboard.pk).stock == 3
    assert Product.objects.get(pk=mouse.pk).stock == 2
    assert Reservation.objects.filter(order_id=order["id"], status="reserved").count() == 2
    notifications = Notification.objects.filter(order_id=order["id"])
    assert [n.kind for n in notifications] == ["order_confirmed"]
    assert notifications[0].status == "sent"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [customer.email]
    assert "confirmed" in mail.outbox[0].subject


@pytest.mark.parametrize(
    ("price", "quantity", "shown"), [("103.95", 2, "207.90"), ("1249.50", 3, "3,748.50"), ("5.00", 1, "5.00")]
)
def test_the_confirmation_email_shows_the_total_as_money(forced_api, place_order, pump, price, quantity, shown):
    product = ProductFactory(stock=5, price=price)

    place_order(forced_api, (product.pk, quantity))
    pump()

    assert f"Total: {shown}." in mail.outbox[0].body


def test_order_beyond_stock_is_rejected_with_reason_and_stock_unchanged(forced_api, place_order, pump):
    lamp = ProductFactory(stock=2)
    cable = ProductFactory(stock=100)

    order = place_order(forced_api, (cable.pk, 10), (lamp.pk, 5))
    pump()

    body = forced_api.get(f"/api/orders/{order['id']}/").json()
    assert body["status"] == "rejected"
    assert f"product {lamp.pk}: 5 requested, 2 in stock" in body["rejection_reason"]
    assert Product.objects.get(pk=lamp.pk).stock == 2
    assert Product.objects.get(pk=cable.pk).stock == 100, "a rejected order reserves no line at all"
    assert not Reservation.objects.filter(order_id=order["id"]).exists()
    assert [n.kind for n in Notification.objects.filter(order_id=order["id"])] == ["order_rejected"]
    assert len(mail.outbox) == 1


def test_cancelling_a_confirmed_order_restores_stock_and_notifies(forced_api, place_order, pump):
    product = ProductFactory(stock=4)
    order = place_order(forced_api, (product.pk, 3))
    pump()
    assert Product.objects.get(pk=product.pk).stock == 1

    response = forced_api.post(f"/api/orders/{order['id']}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    pump()

    assert Product.objects.get(pk=product.pk).stock == 4
    assert Reservation.objects.get(order_id=order["id"]).status == "released"
    kinds = sorted(n.kind for n in Notification.objects.filter(order_id=order["id"]))
    assert kinds == ["order_cancelled", "order_confirmed"]
    assert len(mail.outbox) == 2
    assert Order.objects.get(pk=order["id"]).status == "cancelled"
