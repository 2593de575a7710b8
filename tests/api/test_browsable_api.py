"""The browsable API, for people signed in with a session (the login page, or the admin's)."""

from __future__ import annotations

import html
import json
import re

import pytest
from rest_framework.test import APIClient

from orders.services import order_place
from tests.factories import ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_browsable_api_works_with_a_session_login():
    UserFactory(username="alice")
    product = ProductFactory(name="Keyboard")
    client = APIClient()
    assert client.login(username="alice", password="secret-password")

    response = client.get("/api/products/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert product.sku in response.content.decode()


@pytest.mark.parametrize("user_factory", [UserFactory, StaffFactory], ids=["customer", "staff"])
@pytest.mark.parametrize(
    "url",
    [
        "/api/",
        "/api/products/",
        "/api/products/{product}/",
        "/api/orders/",
        "/api/orders/{order}/",
        "/api/notifications/",
    ],
)
def test_browsable_api_pages_render_for_a_signed_in_user(user_factory, url):
    user = user_factory()
    product = ProductFactory()
    order = order_place(customer=user, items=[(product.pk, 1)])
    client = APIClient()
    client.force_login(user)

    response = client.get(url.format(product=product.pk, order=order.pk), HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "<html" in response.content.decode()


def browsable_form_content(page: str) -> str:
    """The JSON the browsable API's raw-data form offers to send."""
    match = re.search(r'<textarea[^>]*name="_content"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, "the page has no raw-data form"
    return html.unescape(match.group(1)).strip()


def test_browsable_api_order_form_offers_the_items_to_send(customer):
    client = APIClient()
    client.force_login(customer)

    page = client.get("/api/orders/", HTTP_ACCEPT="text/html").content.decode()

    assert json.loads(browsable_form_content(page)) == {"items": []}


def test_options_on_orders_describes_what_placing_an_order_takes(api):
    post = api.options("/api/orders/").json()["actions"]["POST"]

    assert list(post) == ["items"]
    assert post["items"]["required"] is True
    assert set(post["items"]["child"]["children"]) == {"product_id", "quantity"}


def test_session_signed_post_without_a_csrf_token_is_403_and_creates_nothing(customer, order_rows):
    product = ProductFactory()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(customer)
    before = order_rows()

    response = client.post("/api/orders/", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert order_rows() == before
