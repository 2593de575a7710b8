"""Fixtures for the HTTP API tests: signed-in clients that authenticate the way real clients do
(a token in the Authorization header, through the real authentication classes), a snapshot
of what an order leaves in the database, and a shop with one row of everything for the pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser, Group
from django.test import Client
from pytest_django.fixtures import Settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from eventbus.models import DeadLetter, OutboxEvent
from eventbus.redis.transport import Transport
from orders.models import Order, OrderItem
from tests.clients import token_client
from tests.factories import ProductFactory, StaffFactory, UserFactory


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


@pytest.fixture
def superuser() -> AbstractBaseUser:
    return StaffFactory(username="root", is_superuser=True)


@pytest.fixture
def superuser_client(superuser: AbstractBaseUser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def shop(
    api: APIClient,
    customer: AbstractBaseUser,
    superuser: AbstractBaseUser,
    place_order: Callable[..., dict[str, Any]],
    pump: Callable[..., dict[str, int]],
    transport: Transport,
    settings: Settings,
) -> dict[str, Any]:
    """One of everything, made by the real system: a confirmed order of the customer's and one
    of the superuser's, each with its reservation, inbox rows, notification and outbox events
    (kept after publishing, as with OUTBOX_RETENTION_S set), a user group, an API token, and a
    dead letter. Returns the customer's order."""
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 3600}
    Group.objects.create(name="warehouse")
    Token.objects.get_or_create(user=customer)
    keyboard = ProductFactory(sku="KB-1", name="Keyboard", stock=5)
    order = place_order(api, (keyboard.pk, 2))
    place_order(token_client(superuser), (keyboard.pk, 1))
    transport.publish([("orders", {"event": "this is not JSON"})])
    pump()
    assert set(Order.objects.values_list("status", flat=True)) == {"confirmed"}
    assert DeadLetter.objects.exists()
    return order
