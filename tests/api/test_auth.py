"""Signing in with API tokens, and refusing anonymous callers everywhere."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from notifications.services import notification_for_order
from orders.models import Order
from orders.services import order_place
from tests.clients import token_client
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_token_endpoint_returns_the_users_token_for_the_right_password():
    user = UserFactory(username="alice")

    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "secret-password"})

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_token_from_the_endpoint_authenticates_api_requests():
    UserFactory(username="alice")
    token = APIClient().post("/api/auth/token/", {"username": "alice", "password": "secret-password"}).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    response = client.get("/api/orders/")

    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_token_endpoint_with_a_wrong_password_is_400_and_issues_no_token():
    user = UserFactory(username="alice")

    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "not-the-password"})

    assert response.status_code == 400
    assert response.json()["non_field_errors"]
    assert not Token.objects.filter(user=user).exists()


def test_unknown_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")

    response = client.get("/api/products/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/products/"),
        ("post", "/api/products/"),
        ("get", "/api/products/{product}/"),
        ("put", "/api/products/{product}/"),
        ("patch", "/api/products/{product}/"),
        ("post", "/api/products/{product}/restock/"),
        ("get", "/api/orders/"),
        ("post", "/api/orders/"),
        ("get", "/api/orders/{order}/"),
        ("post", "/api/orders/{order}/cancel/"),
        ("get", "/api/notifications/"),
        ("get", "/api/notifications/{notification}/"),
    ],
)
def test_request_without_credentials_is_401_and_changes_nothing(anonymous, order_rows, method, url):
    product = ProductFactory(stock=3, price=Decimal("10.00"))
    order = order_place(customer=UserFactory(), items=[(product.pk, 1)])
    notification = notification_for_order(
        event_id=uuid.uuid4(), customer_id=order.customer_id, order_id=order.pk, kind="order_cancelled"
    )
    before = order_rows()
    url = url.format(product=product.pk, order=order.pk, notification=notification.pk)

    response = getattr(anonymous, method)(url, {"quantity": 1, "price": "0.00"}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}
    assert order_rows() == before
    assert Order.objects.get(pk=order.pk).status == "pending"
    product.refresh_from_db()
    assert (product.stock, product.price) == (3, Decimal("10.00"))


def test_a_token_is_looked_up_once_then_remembered_for_a_while():
    client = token_client(UserFactory())

    with CaptureQueriesContext(connection) as first:
        assert client.get("/api/notifications/").status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get("/api/notifications/").status_code == 200

    token_table = Token._meta.db_table
    assert any(token_table in q["sql"] for q in first.captured_queries)
    assert not any(token_table in q["sql"] for q in second.captured_queries)


def test_a_deleted_token_stops_working_once_the_cache_time_has_passed(settings):
    settings.AUTH_TOKEN_CACHE_S = 0.05
    client = token_client(UserFactory())
    assert client.get("/api/notifications/").status_code == 200
    Token.objects.all().delete()

    time.sleep(0.06)

    assert client.get("/api/notifications/").status_code == 401


def test_with_the_cache_off_a_deleted_token_stops_working_at_once(settings):
    settings.AUTH_TOKEN_CACHE_S = 0
    client = token_client(UserFactory())
    assert client.get("/api/notifications/").status_code == 200
    Token.objects.all().delete()

    assert client.get("/api/notifications/").status_code == 401
