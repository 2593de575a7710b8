"""When the database stops answering, the API says so: 503 with a JSON body and Retry-After,
never a traceback or an HTML error page.

The outage is real for the request (tests/api/database_outage.py): every statement sent to the
database connection fails with the OperationalError Django raises for a lost server. Only
savepoint statements pass, so the test's own transaction can still roll back around the request
and the database can be checked afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import InterfaceError, OperationalError
from rest_framework.test import APIClient

from tests.api.database_outage import SERVER_GONE, database_down
from tests.clients import token_client
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def assert_database_unavailable(response: Any) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "2"
    assert response.json() == {
        "detail": "The database is unavailable; please retry shortly.",
        "code": "database_unavailable",
    }


@pytest.fixture
def client_seeing_errors(customer) -> APIClient:
    """What a real client gets: an unhandled exception becomes the 500 handler's response here
    instead of being re-raised into the test."""
    client = token_client(customer)
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize(
    "error",
    [OperationalError(SERVER_GONE), InterfaceError("connection already closed")],
    ids=["server-gone", "connection-closed"],
)
def test_listing_orders_while_the_database_is_down_is_503_json(client_seeing_errors, error):
    with database_down(error=error) as refused:
        response = client_seeing_errors.get("/api/orders/")

    assert refused, "the request never reached the database"
    assert_database_unavailable(response)


def test_reading_products_while_the_database_is_down_is_503_json(client_seeing_errors):
    product = ProductFactory()

    with database_down():
        response = client_seeing_errors.get(f"/api/products/{product.pk}/")

    assert_database_unavailable(response)


def test_getting_a_token_while_the_database_is_down_is_503_json(customer):
    client = APIClient(raise_request_exception=False)

    with database_down():
        response = client.post("/api/auth/token/", {"username": customer.username, "password": "secret-password"})

    assert_database_unavailable(response)


def test_session_login_to_the_browsable_api_while_the_database_is_down_is_503_json(customer):
    client = APIClient(raise_request_exception=False)
    assert client.login(username=customer.username, password="secret-password")

    with database_down():
        response = client.get("/api/products/", HTTP_ACCEPT="text/html")

    assert_database_unavailable(response)


def test_database_failing_while_an_order_is_written_is_503_and_creates_nothing(
    client_seeing_errors, customer, order_rows
):
    product = ProductFactory()
    before = order_rows()

    with database_down(statements=("INSERT",)) as refused:
        response = client_seeing_errors.post(
            "/api/orders/", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json"
        )

    assert refused, "the order was never written"
    assert_database_unavailable(response)
    assert order_rows() == before


def test_cancelling_while_the_database_is_down_is_503_and_the_order_stays_pending(
    client_seeing_errors, api, place_order
):
    placed = place_order(api, (ProductFactory().pk, 1))

    with database_down(statements=("UPDATE", "INSERT")):
        response = client_seeing_errors.post(f"/api/orders/{placed['id']}/cancel/")

    assert_database_unavailable(response)
    assert api.get(f"/api/orders/{placed['id']}/").json()["status"] == "pending"
