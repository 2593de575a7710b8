"""The browsable API, for people signed in with a session (the login page, or the admin's)."""

from __future__ import annotations

import html
import json
import re

import pytest
from rest_framework.test import APIClient

from orders.models import Order
from orders.services import order_cancel, order_place
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


def csrf_token(page: str) -> str:
    """The CSRF token the page gives its scripts (DRF's csrf.js sends it as X-CSRFToken)."""
    return re.search(r'"csrfToken": "([^"]+)"', page).group(1)


def browsable_form_content(page: str) -> str:
    """The JSON the browsable API's raw-data form offers to send."""
    match = re.search(r'<textarea[^>]*name="_content"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, "the page has no raw-data form"
    return html.unescape(match.group(1)).strip()


def test_browsable_api_order_form_offers_the_items_to_send(customer, order_rows):
    keyboard, mouse = ProductFactory(sku="A-KEYBOARD"), ProductFactory(sku="B-MOUSE")
    ProductFactory(sku="0-RETIRED", active=False)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(customer)
    page = client.get("/api/orders/", HTTP_ACCEPT="text/html").content.decode()
    offered = browsable_form_content(page)

    response = client.post("/api/orders/", offered, content_type="application/json", HTTP_X_CSRFTOKEN=csrf_token(page))

    assert json.loads(offered) == {
        "items": [{"product_id": keyboard.pk, "quantity": 1}, {"product_id": mouse.pk, "quantity": 1}]
    }
    assert response.status_code == 201, response.content
    assert Order.objects.get(pk=response.json()["id"]).customer == customer
    assert order_rows()["orders"] == 1


def test_browsable_api_order_page_has_no_html_form_for_the_lines(customer):
    ProductFactory()
    client = APIClient()
    client.force_login(customer)

    page = client.get("/api/orders/", HTTP_ACCEPT="text/html").content.decode()

    assert "Lists are not currently supported in HTML input" not in page
    assert 'name="html-tab"' not in page
    assert 'id="post-generic-content-form"' in page


def test_order_page_of_a_cancellable_order_has_a_cancel_button(customer):
    order = order_place(customer=customer, items=[(ProductFactory().pk, 1)])
    client = APIClient()
    client.force_login(customer)

    page = client.get(f"/api/orders/{order.pk}/", HTTP_ACCEPT="text/html").content.decode()

    form = re.search(r'<form id="cancel-order"[^>]*action="([^"]+)" method="POST">', page)
    assert form
    assert form.group(1) == f"/api/orders/{order.pk}/cancel/"
    assert "Extra Actions" not in page  # its link to cancel was a GET, answered 405


def test_order_page_of_a_cancelled_order_has_no_cancel_button(customer):
    order = order_place(customer=customer, items=[(ProductFactory().pk, 1)])
    order_cancel(order_id=order.pk)
    client = APIClient()
    client.force_login(customer)

    page = client.get(f"/api/orders/{order.pk}/", HTTP_ACCEPT="text/html").content.decode()

    assert '"status": "cancelled"' in html.unescape(page)
    assert 'id="cancel-order"' not in page


def test_cancelling_from_the_order_page_lands_on_a_200_page_with_the_order_cancelled(customer):
    order = order_place(customer=customer, items=[(ProductFactory().pk, 1)])
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(customer)
    page = client.get(f"/api/orders/{order.pk}/", HTTP_ACCEPT="text/html").content.decode()

    # What the button sends through DRF's ajax-form.js: its JSON body, the CSRF header.
    response = client.post(
        f"/api/orders/{order.pk}/cancel/",
        "{}",
        content_type="application/json",
        HTTP_ACCEPT="text/html; q=1.0, */*",
        HTTP_X_CSRFTOKEN=csrf_token(page),
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert f'<a id="open-order" class="btn btn-default button-form" href="/api/orders/{order.pk}/">' in (
        response.content.decode()
    )
    assert Order.objects.get(pk=order.pk).status == "cancelled"


def test_the_page_of_an_order_just_placed_leads_to_the_order(customer):
    product = ProductFactory()
    client = APIClient()
    client.force_login(customer)

    response = client.post(
        "/api/orders/",
        {"items": [{"product_id": product.pk, "quantity": 1}]},
        format="json",
        HTTP_ACCEPT="text/html; q=1.0, */*",
    )

    assert response.status_code == 201
    order = Order.objects.get(customer=customer)
    assert f'<a id="open-order" class="btn btn-default button-form" href="/api/orders/{order.pk}/">' in (
        response.content.decode()
    )


@pytest.mark.parametrize(
    ("user_factory", "links"),
    [
        (UserFactory, ["/api/docs/", "/api/schema/"]),
        (StaffFactory, ["/api/docs/", "/api/schema/", "/admin/", "/ops/"]),
    ],
    ids=["customer", "staff"],
)
def test_api_root_says_what_the_api_is_for_and_links_to_the_docs(user_factory, links):
    client = APIClient()
    client.force_login(user_factory())

    page = client.get("/api/", HTTP_ACCEPT="text/html").content.decode()

    description = re.search(r'<div class="pull-left">(.*?)</div>', page, re.S).group(1)
    assert "place orders and cancel them" in description
    assert "The default basic root view" not in description
    assert re.findall(r'<a href="([^"]+)">', description) == links


def test_api_root_lists_the_docs_and_the_schema_for_programs(api):
    root = api.get("/api/").json()

    assert root["docs"] == "http://testserver/api/docs/"
    assert root["schema"] == "http://testserver/api/schema/"
    assert root["orders"] == "http://testserver/api/orders/"


def test_browsable_api_logs_out_without_inline_script(customer):
    client = APIClient()
    client.force_login(customer)

    page = client.get("/api/", HTTP_ACCEPT="text/html").content.decode()

    assert "onclick" not in page
    assert re.search(r'<form id="logoutForm" method="post" action="/api-auth/logout/\?next=/api/">', page)


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
