"""Input an attacker or a broken client sends gets a 4xx with a JSON body, never a 5xx, a
traceback in the log, or HTML where a JSON client expects JSON."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def nested(depth: int) -> str:
    return '{"items": ' + "[" * depth + "]" * depth + "}"


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()


def test_an_order_whose_total_overflows_the_column_is_400_on_the_items_and_creates_nothing(api, order_rows):
    product = ProductFactory(price=Decimal("9999999999.99"), stock=1000)
    before = order_rows()

    response = api.post("/api/orders/", {"items": [{"product_id": product.pk, "quantity": 101}]})

    body = assert_json_error(response, 400)
    assert "over the maximum of 999,999,999,999.99" in body["items"][0]
    assert order_rows() == before


def test_an_order_at_the_largest_total_the_column_holds_is_placed(api):
    product = ProductFactory(price=Decimal("9999999999.99"), stock=1000)

    response = api.post("/api/orders/", {"items": [{"product_id": product.pk, "quantity": 100}]})

    assert response.status_code == 201
    assert response.json()["total"] == "999999999999.00"


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_deeply_nested_json_to_the_anonymous_token_endpoint_is_400_without_a_traceback(depth, caplog):
    client = APIClient()

    with caplog.at_level(logging.ERROR):
        response = client.post("/api/auth/token/", nested(depth), content_type="application/json")

    assert "nested deeper than" in assert_json_error(response, 400)["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_deeply_nested_json_to_the_orders_endpoint_is_400_and_creates_nothing(api, order_rows):
    before = order_rows()

    response = api.post("/api/orders/", nested(1_000), content_type="application/json")

    assert_json_error(response, 400)
    assert order_rows() == before


def test_json_nested_a_little_is_judged_by_the_serializer_not_the_parser(api):
    response = api.post("/api/orders/", nested(3), content_type="application/json")

    assert "items" in assert_json_error(response, 400)


def test_multipart_to_the_token_endpoint_is_415_before_the_body_is_read():
    client = APIClient()

    response = client.post("/api/auth/token/", {"username": "a", "password": "b"}, format="multipart")

    assert assert_json_error(response, 415)["detail"].startswith("Unsupported media type")


def test_multipart_to_the_orders_endpoint_is_415(api):
    response = api.post("/api/orders/", {"items": "x"}, format="multipart")

    assert_json_error(response, 415)


def test_a_body_declared_over_the_limit_is_413_json(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"items": [' + ", ".join(['{"product_id": 1, "quantity": 1}'] * 100) + "]}"

    response = api.post("/api/orders/", body, content_type="application/json")

    assert assert_json_error(response, 413)["code"] == "request_too_large"


def test_a_body_over_the_limit_to_the_admin_is_413_too(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    client = APIClient()

    response = client.post("/admin/login/", "x" * 1000, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 413


def test_too_many_form_fields_to_the_token_endpoint_is_400_json(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    body = "&".join(f"f{i}=x" for i in range(200))

    response = APIClient().post("/api/auth/token/", body, content_type="application/x-www-form-urlencoded")

    assert assert_json_error(response, 400) == {
        "detail": "The request has more fields than the server takes.", "code": "too_many_fields"
    }  # fmt: skip


@pytest.mark.parametrize("url", ["/api/orders/not-a-uuid/", "/api/nope/", "/api/orders/1/cancel/x/"])
def test_an_unknown_api_url_is_a_json_404(api, url):
    response = api.get(url)

    assert assert_json_error(response, 404) == {"detail": "Not found.", "code": "not_found"}


def test_an_unknown_api_url_is_json_for_curl_too():
    response = APIClient().get("/api/nope/", HTTP_ACCEPT="*/*")

    assert_json_error(response, 404)


def test_an_unknown_api_url_is_an_html_page_for_a_browser(api):
    response = api.get("/api/nope/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/")


def test_an_order_that_is_not_there_is_a_json_404(api):
    response = api.get(f"/api/orders/{uuid.uuid4()}/")

    assert_json_error(response, 404)


def test_a_method_the_endpoint_does_not_take_is_a_json_405(api, place_order):
    order = place_order(api, (ProductFactory().pk, 1))

    response = api.delete(f"/api/orders/{order['id']}/")

    assert_json_error(response, 405)


def test_an_unhandled_error_under_the_api_is_a_json_500_without_details(api, monkeypatch):
    from orders.api import views

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views.selectors, "order_list", explode)
    api.raise_request_exception = False

    response = api.get("/api/orders/")

    assert assert_json_error(response, 500) == {"detail": "Internal server error.", "code": "server_error"}
