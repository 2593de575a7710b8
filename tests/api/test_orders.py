"""Placing, listing, reading and cancelling orders through the API."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from eventbus.models import OutboxEvent
from orders.models import Order, OrderItem
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def outbox_types(order_id: str) -> list[str]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="order", aggregate_id=order_id)
        .order_by("id")
        .values_list("event_type", flat=True)
    )


# --- placing ----------------------------------------------------------------------------------


def test_placing_an_order_is_201_pending_with_items_total_and_timestamps(api, customer):
    keyboard = ProductFactory(sku="KB-1", name="Keyboard", price=Decimal("20.00"))
    mouse = ProductFactory(sku="MS-1", name="Mouse", price=Decimal("7.50"))

    response = api.post(
        "/api/orders/",
        {"items": [{"product_id": keyboard.pk, "quantity": 2}, {"product_id": mouse.pk, "quantity": 1}]},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["total"] == "47.50"
    assert body["customer_id"] == customer.pk
    keyboard_line = {"product_id": keyboard.pk, "sku": "KB-1", "name": "Keyboard", "quantity": 2}
    mouse_line = {"product_id": mouse.pk, "sku": "MS-1", "name": "Mouse", "quantity": 1}
    assert body["items"] == [
        {**keyboard_line, "unit_price": "20.00", "line_total": "40.00"},
        {**mouse_line, "unit_price": "7.50", "line_total": "7.50"},
    ]
    for stamp in ("created_at", "updated_at"):
        assert dt.datetime.fromisoformat(body[stamp])
    assert body["confirmed_at"] is body["rejected_at"] is body["cancelled_at"] is None


def test_placing_an_order_writes_the_order_its_items_and_one_order_placed_event(api, customer):
    product = ProductFactory(price=Decimal("3.00"))

    response = api.post("/api/orders/", {"items": [{"product_id": product.pk, "quantity": 4}]}, format="json")

    order_id = response.json()["id"]
    order = Order.objects.get(pk=order_id)
    assert (order.customer, order.status, order.total) == (customer, "pending", Decimal("12.00"))
    assert list(OrderItem.objects.filter(order=order).values_list("product_id", "quantity", "unit_price")) == [
        (product.pk, 4, Decimal("3.00"))
    ]
    assert outbox_types(order_id) == ["orders.OrderPlaced"]
    placed = json.loads(OutboxEvent.objects.get(aggregate_id=order_id).body)
    assert placed["payload"]["items"] == [{"product_id": product.pk, "quantity": 4}]


def test_placed_order_has_a_location_header_that_leads_to_it(api):
    product = ProductFactory()

    response = api.post("/api/orders/", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json")

    assert response["Location"] == f"/api/orders/{response.json()['id']}/"
    assert api.get(response["Location"]).json()["id"] == response.json()["id"]


# --- listing and reading ----------------------------------------------------------------------


def test_order_list_shows_only_the_callers_own_orders_paginated(api, other_api, place_order):
    product = ProductFactory()
    mine = [place_order(api, (product.pk, 1))["id"] for _ in range(2)]
    place_order(other_api, (product.pk, 1))

    response = api.get("/api/orders/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert sorted(o["id"] for o in body["results"]) == sorted(mine)
    assert {"next", "previous"} <= set(body)


def test_staff_order_list_shows_everyones_orders(api, other_api, staff_api, place_order):
    product = ProductFactory()
    ids = {place_order(api, (product.pk, 1))["id"], place_order(other_api, (product.pk, 2))["id"]}

    body = staff_api.get("/api/orders/").json()

    assert body["count"] == 2
    assert {o["id"] for o in body["results"]} == ids


def test_order_list_is_newest_first(api, place_order):
    product = ProductFactory()
    first = place_order(api, (product.pk, 1))["id"]
    second = place_order(api, (product.pk, 1))["id"]

    assert [o["id"] for o in api.get("/api/orders/").json()["results"]] == [second, first]


def test_order_list_pages_hold_fifty_orders(api, place_order, settings):
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0  # no pipeline runs here: all 51 stay pending
    product = ProductFactory()
    for _ in range(51):
        place_order(api, (product.pk, 1))

    first_page = api.get("/api/orders/").json()
    second_page = api.get(first_page["next"]).json()

    assert (first_page["count"], len(first_page["results"]), len(second_page["results"])) == (51, 50, 1)
    assert second_page["next"] is None


def test_order_list_filters_by_status(api, place_order):
    product = ProductFactory()
    kept = place_order(api, (product.pk, 1))["id"]
    cancelled = place_order(api, (product.pk, 1))["id"]
    api.post(f"/api/orders/{cancelled}/cancel/")

    assert [o["id"] for o in api.get("/api/orders/?status=pending").json()["results"]] == [kept]
    assert [o["id"] for o in api.get("/api/orders/?status=cancelled").json()["results"]] == [cancelled]


def test_order_detail_shows_the_callers_order(api, place_order):
    product = ProductFactory(price=Decimal("2.00"))
    placed = place_order(api, (product.pk, 3))

    response = api.get(f"/api/orders/{placed['id']}/")

    assert response.status_code == 200
    assert response.json() == placed


def test_another_customers_order_is_404(api, other_api, place_order):
    theirs = place_order(other_api, (ProductFactory().pk, 1))

    response = api.get(f"/api/orders/{theirs['id']}/")

    assert response.status_code == 404


def test_staff_can_read_any_customers_order(staff_api, api, place_order):
    placed = place_order(api, (ProductFactory().pk, 1))

    assert staff_api.get(f"/api/orders/{placed['id']}/").json()["id"] == placed["id"]


def test_unknown_order_id_is_404(api):
    assert api.get("/api/orders/0b5e3c4a-7f0e-4d7a-9d55-6f7c1c9a1e2b/").status_code == 404


@pytest.mark.parametrize(
    "order_id",
    [
        "not-an-order",
        "12345",
        "0b5e3c4a-7f0e-4d7a-9d55-6f7c1c9a1e2bXX",
        "------------------------------------",
        "0b5e3c4a7f0e4d7a9d556f7c1c9a1e2-",
    ],
)
def test_malformed_order_id_is_404(api, order_id):
    assert api.get(f"/api/orders/{order_id}/").status_code == 404


# --- cancelling -------------------------------------------------------------------------------


def test_cancelling_a_pending_order_is_200_and_publishes_order_cancelled(api, place_order):
    placed = place_order(api, (ProductFactory().pk, 2))

    response = api.post(f"/api/orders/{placed['id']}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelled_at"]
    order = Order.objects.get(pk=placed["id"])
    assert order.status == "cancelled"
    assert order.cancelled_at is not None
    assert outbox_types(placed["id"]) == ["orders.OrderPlaced", "orders.OrderCancelled"]


def test_cancelling_another_customers_order_is_404_and_leaves_it_pending(api, other_api, place_order):
    theirs = place_order(other_api, (ProductFactory().pk, 1))

    response = api.post(f"/api/orders/{theirs['id']}/cancel/")

    assert response.status_code == 404
    assert Order.objects.get(pk=theirs["id"]).status == "pending"
    assert outbox_types(theirs["id"]) == ["orders.OrderPlaced"]


def test_staff_can_cancel_any_customers_order(staff_api, api, place_order):
    placed = place_order(api, (ProductFactory().pk, 1))

    response = staff_api.post(f"/api/orders/{placed['id']}/cancel/")

    assert response.status_code == 200
    assert Order.objects.get(pk=placed["id"]).status == "cancelled"


def test_cancelling_an_already_cancelled_order_is_409_with_a_detail_and_publishes_nothing(api, place_order):
    placed = place_order(api, (ProductFactory().pk, 1))
    api.post(f"/api/orders/{placed['id']}/cancel/")

    response = api.post(f"/api/orders/{placed['id']}/cancel/")

    assert response.status_code == 409
    assert response.json()["detail"] == "This order is cancelled and can no longer be cancelled."
    assert outbox_types(placed["id"]) == ["orders.OrderPlaced", "orders.OrderCancelled"]


def test_cancelling_an_unknown_order_is_404(api):
    assert api.post("/api/orders/0b5e3c4a-7f0e-4d7a-9d55-6f7c1c9a1e2b/cancel/").status_code == 404


@pytest.mark.parametrize(
    "order_id",
    ["not-an-order", "------------------------------------", "0b5e3c4a7f0e4d7a9d556f7c1c9a1e2-"],
)
def test_cancelling_a_malformed_order_id_is_404(api, order_id):
    assert api.post(f"/api/orders/{order_id}/cancel/").status_code == 404


def test_orders_cannot_be_edited_or_deleted_through_the_api(api, place_order):
    placed = place_order(api, (ProductFactory().pk, 1))

    assert api.patch(f"/api/orders/{placed['id']}/", {"status": "confirmed"}, format="json").status_code == 405
    assert api.delete(f"/api/orders/{placed['id']}/").status_code == 405
    assert Order.objects.get(pk=placed["id"]).status == "pending"


def test_an_order_renders_exactly_as_its_serializer_declares(api, place_order):
    from orders.api.serializers import OrderSerializer
    from orders.models import Order

    placed = place_order(api, (ProductFactory().pk, 2), (ProductFactory().pk, 1))
    order = Order.objects.prefetch_related("items").get(pk=placed["id"])

    assert OrderSerializer.render(order) == OrderSerializer(order).data
    assert placed == OrderSerializer(order).data
