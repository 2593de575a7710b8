"""The OpenAPI schema and its interactive documentation."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_openapi_schema_describes_the_order_endpoints(anonymous):
    response = anonymous.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert {"/api/orders/", "/api/orders/{id}/", "/api/orders/{id}/cancel/"} <= set(schema["paths"])
    assert {"get", "post"} <= set(schema["paths"]["/api/orders/"])


def test_openapi_schema_describes_products_notifications_and_the_token_endpoint(anonymous):
    paths = yaml.safe_load(anonymous.get("/api/schema/").content)["paths"]

    assert {"/api/products/", "/api/products/{id}/restock/", "/api/notifications/", "/api/auth/token/"} <= set(paths)


def test_api_docs_page_is_html_served_from_this_server():
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn." not in page
    # Its start-up script is a file of its own (no inline script under the CSP), and reads the schema.
    assert '<script src="/api/docs/?script="></script>' in page
    script = APIClient().get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in script.content.decode()


def test_openapi_schema_types_the_notification_id_as_an_integer(anonymous):
    paths = yaml.safe_load(anonymous.get("/api/schema/").content)["paths"]

    [id_param] = [p for p in paths["/api/notifications/{id}/"]["get"]["parameters"] if p["in"] == "path"]
    assert id_param["schema"]["type"] == "integer"


def test_openapi_schema_generates_without_warnings_and_validates():
    out = io.StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=io.StringIO())

    assert "/api/orders/" in out.getvalue()
