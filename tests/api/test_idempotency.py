"""Idempotent placement: a client that retries `POST /api/orders/` with the same Idempotency-Key
gets the first order back, never a second one."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from rest_framework.test import APIClient

from eventbus.models import OutboxEvent
from orders.models import Order
from tests.clients import token_client
from tests.concurrency import run_at_once
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def body(product, quantity: int = 1) -> dict:
    return {"items": [{"product_id": product.pk, "quantity": quantity}]}


def place(client: APIClient, data: dict, key: str | None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post("/api/orders/", data, **headers)


def test_a_retry_with_the_same_key_and_body_gets_the_first_order_and_places_no_second(api, customer):
    product = ProductFactory()

    first = place(api, body(product), "checkout-7f3a")
    again = place(api, body(product), "checkout-7f3a")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert again["Location"] == first["Location"]
    assert Order.objects.filter(customer=customer).count() == 1
    assert OutboxEvent.objects.filter(event_type="orders.OrderPlaced").count() == 1


def test_the_same_key_with_another_body_is_422_and_places_nothing(api, order_rows):
    product = ProductFactory()
    place(api, body(product, 1), "checkout-1")
    before = order_rows()

    response = place(api, body(product, 2), "checkout-1")

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert order_rows() == before


def test_keys_belong_to_one_customer(api, other_api):
    product = ProductFactory()

    mine = place(api, body(product), "same-key").json()
    theirs = place(other_api, body(product), "same-key")

    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert "Idempotent-Replayed" not in theirs


def test_without_a_key_every_post_is_a_new_order(api, customer):
    product = ProductFactory()

    place(api, body(product), None)
    place(api, body(product), None)

    assert Order.objects.filter(customer=customer).count() == 2


@pytest.mark.parametrize(
    "key", ["", " ", "x" * 256, "naïve", "tab\there"], ids=["empty", "blank", "long", "non-ascii", "tab"]
)
def test_a_malformed_key_is_400_and_places_nothing(api, key, order_rows):
    product = ProductFactory()
    before = order_rows()

    response = place(api, body(product), key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert order_rows() == before


def test_a_key_of_255_printable_characters_is_accepted(api):
    response = place(api, body(ProductFactory()), "k" * 254 + "~")

    assert response.status_code == 201


def test_a_key_first_used_more_than_a_day_ago_is_422(api):
    product = ProductFactory()
    first = place(api, body(product), "old-key").json()
    Order.objects.filter(pk=first["id"]).update(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=25))

    response = place(api, body(product), "old-key")

    assert response.status_code == 422
    assert "24 hours" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_the_replay_shows_the_order_as_it_is_now(api, pump):
    product = ProductFactory()
    first = place(api, body(product), "k1").json()
    pump()

    again = place(api, body(product), "k1").json()

    assert (first["status"], again["status"]) == ("pending", "confirmed")


def test_a_retry_while_redis_is_down_still_places_one_order(api, customer, redis_down):
    product = ProductFactory()

    first = place(api, body(product), "k-redis-down")
    again = place(api, body(product), "k-redis-down")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_retries_with_one_key_converge_on_one_order(customer):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL (CI runs it)")
    product = ProductFactory(stock=100)
    clients = [token_client(customer) for _ in range(8)]

    def retry(client) -> tuple[int, str, str | None]:
        response = place(client, body(product), "raced-key")
        return response.status_code, response.json().get("id"), response.get("Idempotent-Replayed")

    answers = run_at_once([lambda c=c: retry(c) for c in clients])

    assert [status for status, _, _ in answers] == [201] * 8
    assert len({order_id for _, order_id, _ in answers}) == 1
    assert sum(replayed == "true" for _, _, replayed in answers) == 7
    assert Order.objects.filter(customer=customer).count() == 1
