"""The API says what a client needs and no more: the pipeline's shape only to staff or a
monitor, never the Host a client sent, a `detail` and a stable `code` in every error (each code
listed in the schema), and no Python internals in any message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.test import APIClient

from config.openapi import ERROR_CODES
from eventbus.messages import registry
from eventbus.runtime import heartbeats
from eventbus.runtime.heartbeats import Heartbeat
from tests.api.answers import field_errors
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

INTERNALS = ("sys.", "set_int_max_str_digits", "Traceback", "Exception", "Error:", "ALLOWED_HOSTS", "codec")


def assert_says_no_internals(response) -> None:
    text = response.content.decode(errors="replace")
    for word in INTERNALS:
        assert word not in text, text[:500]


# --- /readyz?pipeline=1 ----------------------------------------------------------------------------


@pytest.fixture
def pipeline_running(transport) -> None:
    for group in registry.groups():
        heartbeats.send(transport, Heartbeat(role="consumer", name=f"r-{group}", groups=[group]))
    heartbeats.send(transport, Heartbeat(role="relay", name="r-relay"))


def test_an_anonymous_client_gets_the_pipelines_status_alone(pipeline_running):
    response = APIClient().get("/readyz?pipeline=1", REMOTE_ADDR="203.0.113.5")

    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_an_anonymous_client_hears_the_pipeline_is_not_ready_and_not_why():
    response = APIClient().get("/readyz?pipeline=1", REMOTE_ADDR="203.0.113.5")

    assert (response.status_code, response.json()) == (503, {"status": "not ready"})


def test_a_customer_gets_the_status_alone(pipeline_running, api):
    assert api.get("/readyz?pipeline=1").json() == {"status": "ready"}


def test_staff_signed_in_see_the_pipelines_details(pipeline_running, staff):
    client = Client()
    client.force_login(staff)

    body = client.get("/readyz?pipeline=1").json()

    assert body["consumers"] == dict.fromkeys(registry.groups(), 1)
    assert (body["relays"], body["missing"]) == (1, [])


def test_the_metrics_token_shows_the_pipelines_details(pipeline_running, settings):
    settings.METRICS_TOKEN = "monitor-token"

    body = APIClient().get("/readyz?pipeline=1", HTTP_AUTHORIZATION="Bearer monitor-token").json()
    wrong = APIClient().get("/readyz?pipeline=1", HTTP_AUTHORIZATION="Bearer guess").json()

    assert body["missing"] == []
    assert wrong == {"status": "ready"}


# --- Host ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.parametrize("path", ["/api/products/", "/healthz", "/admin/login/"])
def test_a_host_not_served_is_a_400_that_does_not_repeat_it(settings, debug, path):
    settings.DEBUG = debug

    response = Client(raise_request_exception=False).get(path, HTTP_HOST="evil-host.example")

    assert response.status_code == 400
    assert b"evil-host" not in response.content
    assert_says_no_internals(response)
    if path.startswith("/api/"):
        assert response.json() == {"detail": "The Host header names no site this server serves.", "code": "bad_host"}


# --- detail and code -------------------------------------------------------------------------------


def error_answers(api, staff_api):
    product = ProductFactory()
    anonymous = APIClient()
    return {
        "not_authenticated": anonymous.get("/api/orders/"),
        "authentication_failed": APIClient(HTTP_AUTHORIZATION="Token nope").get("/api/orders/"),
        "permission_denied": api.post("/api/products/", {}, format="json"),
        "not_found": api.get("/api/orders/00000000-0000-0000-0000-000000000000/"),
        "method_not_allowed": staff_api.delete(f"/api/products/{product.pk}/"),
        "not_acceptable": api.get("/api/orders/", HTTP_ACCEPT="application/xml"),
        "unsupported_media_type": api.post("/api/orders/", "<x/>", content_type="application/xml"),
        "parse_error": api.post("/api/orders/", "{not json", content_type="application/json"),
        "invalid": api.post("/api/orders/", {"items": []}, format="json"),
    }


def test_every_error_has_a_detail_and_its_code(api, staff_api):
    for code, response in error_answers(api, staff_api).items():
        body = response.json()
        assert body.get("code") == code, (response.status_code, body)
        assert isinstance(body.get("detail"), str), body
        assert body["detail"], body


def test_every_code_answered_is_listed_in_the_schema(api, staff_api):
    codes = {response.json()["code"] for response in error_answers(api, staff_api).values()}
    schema = APIClient().get("/api/schema/?format=json").json()

    listed = schema["components"]["schemas"]["Error"]["properties"]["code"]["enum"]

    assert codes <= set(listed) == set(ERROR_CODES)
    assert schema["components"]["schemas"]["ValidationError"]["required"] == ["detail", "code"]


def test_every_code_the_api_code_writes_is_listed_in_the_schema():
    root = Path(__file__).resolve().parents[2]
    written = {
        match
        for app in ("config", "orders", "inventory", "notifications")
        for path in (root / app).rglob("*.py")
        for match in re.findall(r'(?:"code": ?|code = )"([a-z_]+)"', path.read_text())
    }

    assert "too_many_pending_orders" in written  # the scan sees the apps' codes
    assert written <= set(ERROR_CODES), written - set(ERROR_CODES)


def test_a_failed_sign_in_says_why_in_its_detail():
    response = APIClient().post("/api/auth/token/", {"username": "nobody", "password": "x"}, format="json")

    assert response.json()["detail"] == "Unable to log in with provided credentials."
    assert field_errors(response) == {"non_field_errors": ["Unable to log in with provided credentials."]}


# --- no Python internals ---------------------------------------------------------------------------


HUGE = "9" * 5000


def test_a_huge_integer_in_an_order_is_a_400_on_its_field(api, order_rows):
    product = ProductFactory()
    before = order_rows()

    response = api.post(
        "/api/orders/", f'{{"items": [{{"product_id": {product.pk}, "quantity": {HUGE}}}]}}',
        content_type="application/json",
    )  # fmt: skip

    assert field_errors(response) == {"items": [{"quantity": ["A valid integer is required."]}]}
    assert_says_no_internals(response)
    assert order_rows() == before


def test_a_huge_integer_anywhere_in_the_body_is_refused_in_the_apis_words(staff_api):
    product = ProductFactory(stock=2)

    response = staff_api.post(
        f"/api/products/{product.pk}/restock/", f'{{"quantity": -{HUGE}}}', content_type="application/json"
    )

    assert list(field_errors(response)) == ["quantity"]
    assert_says_no_internals(response)


@pytest.mark.parametrize(
    ("body", "charset"),
    [(b"\xff\xfe{", "utf-8"), (b'{"items": NaN}', "utf-8"), (b'{"items": [', "utf-8")],
    ids=["not-utf-8", "nan", "truncated"],
)
def test_a_body_that_is_not_json_gets_a_parse_error_without_internals(api, body, charset):
    response = api.post("/api/orders/", body, content_type=f"application/json; charset={charset}")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert response.json()["detail"].startswith("JSON parse error - ")
    assert_says_no_internals(response)


def test_an_unknown_api_url_is_a_json_404_with_a_code_in_debug_too(settings):
    settings.DEBUG = True
    response = APIClient().get("/api/no-such-thing/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
