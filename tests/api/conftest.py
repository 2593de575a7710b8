"""Fixtures for the HTTP API tests: signed-in clients that authenticate the way real clients do
(a token in the Authorization header, through the real authentication classes), and a snapshot
of what an order leaves in the database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from eventbus.models import OutboxEvent
from orders.models import Order, OrderItem
from tests.factories import StaffFactory, UserFactory


def token_client(user: AbstractBaseUser) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def customer() -> AbstractBaseUser:
    return UserFactory()


@pytest.fixture
def other_customer() -> AbstractBaseUser:
    return UserFactory()


@pytest.fixture
def staff() -> AbstractBaseUser:
    return StaffFactory()


@pytest.fixture
def api(customer: AbstractBaseUser) -> APIClient:
    """The customer, signed in with their API token."""
    return token_client(customer)


@pytest.fixture
def other_api(other_customer: AbstractBaseUser) -> APIClient:
    return token_client(other_customer)


@pytest.fixture
def staff_api(staff: AbstractBaseUser) -> APIClient:
    return token_client(staff)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


Snapshot = Callable[[], dict[str, int]]


@pytest.fixture
def order_rows() -> Snapshot:
    """Counts of everything placing an order writes, to prove a refused request wrote none."""

    def count() -> dict[str, int]:
        return {
            "orders": Order.objects.count(),
            "order items": OrderItem.objects.count(),
            "outbox events": OutboxEvent.objects.count(),
        }

    return count


PlaceOrder = Callable[..., dict[str, Any]]


@pytest.fixture
def place_order() -> PlaceOrder:
    """POST an order of (product_id, quantity) lines as `client` and return the created order."""

    def place(client: APIClient, *lines: tuple[int, int]) -> dict[str, Any]:
        body = {"items": [{"product_id": p, "quantity": q} for p, q in lines]}
        response = client.post("/api/orders/", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return place
