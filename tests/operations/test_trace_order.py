"""Following one order from a customer's complaint: `manage.py trace_order` and the admin's
order page, after the order went through the real relay and consumers (in-process, `pump`)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid

import pytest
from django.core.management import call_command

from eventbus.models import OutboxEvent
from orders.models import Order
from tests.clients import token_client
from tests.factories import ProductFactory, StaffFactory
from tests.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def trace(order_id: str) -> dict:
    out = io.StringIO()
    call_command("trace_order", order_id, "--json", stdout=out)
    return json.loads(out.getvalue())


def happened(timeline: dict) -> list[tuple[str, str]]:
    return [(e["kind"], e["what"]) for e in timeline["timeline"]]


def assert_in_time_order(timeline: dict) -> None:
    times = [e["at"] for e in timeline["timeline"]]
    assert times == sorted(times)


def place(customer, product, quantity: int, request_id: str | None = None) -> str:
    headers = {"HTTP_X_REQUEST_ID": request_id} if request_id else {}
    response = token_client(customer).post(
        "/api/orders/", {"items": [{"product_id": product.pk, "quantity": quantity}]}, **headers
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_a_confirmed_order_shows_each_event_each_group_and_the_email_in_time_order(customer, pump):
    product = ProductFactory(stock=5)
    request_id = str(uuid.uuid4())
    order_id = place(customer, product, 2, request_id)
    pump()

    timeline = trace(order_id)

    assert timeline["status"] == "confirmed"
    steps = happened(timeline)
    for expected in [
        ("order", "placed, total 20.00"),
        ("event", "orders.OrderPlaced"),
        ("handled", "orders.OrderPlaced applied by group inventory"),
        ("reservation", f"reserved 2 of product {product.pk}"),
        ("event", "inventory.InventoryReserved"),
        ("handled", "inventory.InventoryReserved applied by group orders"),
        ("order", "confirmed"),
        ("event", "orders.OrderConfirmed"),
        ("handled", "orders.OrderConfirmed applied by group notifications"),
        ("notification", "order confirmed notification created"),
        ("notification", "order confirmed e-mail sent"),
    ]:
        assert expected in steps, expected
    assert steps.index(("event", "orders.OrderPlaced")) < steps.index(("event", "inventory.InventoryReserved"))
    assert steps.index(("event", "inventory.InventoryReserved")) < steps.index(("event", "orders.OrderConfirmed"))
    assert_in_time_order(timeline)
    events = [e for e in timeline["timeline"] if e["kind"] == "event"]
    assert {e["detail"]["correlation_id"] for e in events} == {request_id}, "one id from the HTTP answer on"
    handled = [e for e in timeline["timeline"] if e["kind"] == "handled"]
    assert all(e["detail"]["consumer"] and e["detail"]["attempt"] == 1 and "batch_ms" in e["detail"] for e in handled)
    assert all(e["detail"]["message_id"] for e in events)


def test_a_rejected_order_shows_why(customer, pump):
    product = ProductFactory(stock=1)
    order_id = place(customer, product, 3)
    pump()

    steps = happened(trace(order_id))

    assert ("event", "inventory.InventoryReservationFailed") in steps
    assert ("order", "rejected") in steps
    assert ("notification", "order rejected e-mail sent") in steps
    assert not [s for s in steps if s[0] == "reservation"]


def test_a_cancelled_order_shows_its_stock_released(customer, pump):
    product = ProductFactory(stock=5)
    order_id = place(customer, product, 2)
    pump()
    assert token_client(customer).post(f"/api/orders/{order_id}/cancel/").status_code == 200
    pump()

    timeline = trace(order_id)
    steps = happened(timeline)

    assert timeline["status"] == "cancelled"
    assert ("order", "cancelled") in steps
    assert ("handled", "orders.OrderCancelled applied by group inventory") in steps
    assert ("reservation", f"released 2 of product {product.pk}") in steps
    assert ("notification", "order cancelled e-mail sent") in steps
    assert steps.index(("reservation", f"reserved 2 of product {product.pk}")) < steps.index(
        ("reservation", f"released 2 of product {product.pk}")
    )
    assert_in_time_order(timeline)


def test_a_dead_lettered_order_shows_the_dead_letter_and_why(customer, pump, settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": False}  # the relay publishes the row
    product = ProductFactory(stock=5)
    order_id = place(customer, product, 1)
    row = OutboxEvent.objects.get(aggregate_id=order_id)
    row.body = row.body.replace('"quantity":1', '"quantity":0')  # a producer bug: a line of nothing
    row.save(update_fields=["body"])
    pump()

    timeline = trace(order_id)
    dead = [e for e in timeline["timeline"] if e["kind"] == "dead letter"]

    assert timeline["status"] == "pending"
    assert len(dead) == 1
    assert dead[0]["detail"]["group"] == "inventory"
    assert "orders.OrderPlaced dead-lettered in group inventory" in dead[0]["what"]
    assert "product_id and quantity must be positive" in dead[0]["what"]
    assert dead[0]["link"].startswith("/admin/eventbus/deadletter/")


def test_the_start_of_an_id_is_enough(customer, pump):
    order_id = place(customer, ProductFactory(), 1)

    assert trace(order_id[:8])["order"] == order_id
    assert trace(order_id.replace("-", "")[:12])["order"] == order_id


def test_an_unknown_order_is_one_line_and_exit_1(processes):
    result = subprocess.run(
        [sys.executable, "manage.py", "trace_order", "00000000-dead-beef-0000-000000000000"],
        cwd=ROOT, env=processes.env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: no order has the id 00000000-dead-beef-0000-000000000000"
    ]


def test_the_admins_order_page_shows_the_timeline_with_links(customer, pump, client):
    product = ProductFactory(stock=5)
    order_id = place(customer, product, 1)
    pump()
    client.force_login(StaffFactory(is_superuser=True))

    page = client.get(f"/admin/orders/order/{order_id}/change/").content.decode()

    assert 'id="order-timeline"' in page
    assert "orders.OrderPlaced applied by group inventory" in page
    assert f"/admin/inventory/reservation/?order_id={order_id}" in page
    assert f"/admin/notifications/notification/?order_id={order_id}" in page
    assert Order.objects.get(pk=order_id).status == "confirmed"
