"""JSON logs a log pipeline can follow: the web (the Procfile's) and consumers run as processes with
LOG_FORMAT=json and LOG_LEVEL=DEBUG; one id, sent as X-Request-ID, leads from the HTTP answer to
every line of both processes about that order."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from rest_framework.authtoken.models import Token

from tests.factories import ProductFactory, UserFactory
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

EVENT_FIELDS = {"event_id", "event_type", "correlation_id", "causation_id", "aggregate_id", "group", "consumer",
                "stream", "message_id", "attempt", "duration_ms"}  # fmt: skip


def json_lines(text: str) -> list[dict]:
    """Every line of a process's output, each of which must be one JSON object."""
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


def test_a_request_id_leads_to_every_line_about_the_order_in_the_web_and_the_consumer(processes):
    processes.env_overrides.update(LOG_FORMAT="json", LOG_LEVEL="DEBUG")
    product = ProductFactory(stock=5)
    key = Token.objects.create(user=UserFactory()).key
    web = processes.start_web()
    processes.start_relay()
    processes.start_consumer("orders", "logs-orders")  # writes the order the web's intake took
    processes.start_consumer("inventory", "logs-inventory")
    request_id = str(uuid.uuid4())

    body = json.dumps({"items": [{"product_id": product.pk, "quantity": 1}]}).encode()
    request = urllib.request.Request(
        f"{web}/api/orders/", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {key}", "X-Request-ID": request_id},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-Request-ID"] == request_id
        order_id = json.loads(response.read())["id"]

    def consumer_lines() -> list[dict]:
        return [r for r in json_lines(processes.log("logs-inventory")) if r.get("aggregate_id") == order_id]

    def access_lines() -> list[dict]:
        lines = json_lines(processes.log("web"))
        return [r for r in lines if r.get("logger") == "gunicorn.access" and r.get("path") == "/api/orders/"]

    wait_until(lambda: consumer_lines(), timeout=30, what="the consumer's line about the order")
    # Access lines are written by a background thread (config.logs.BatchedStreamHandler).
    wait_until(access_lines, timeout=10, what="the web's access line")
    web_lines = json_lines(processes.log("web"))
    handled = consumer_lines()

    placed = [r for r in web_lines if r.get("aggregate_id") == order_id]
    assert placed
    assert all(r["correlation_id"] == request_id and r["request_id"] == request_id for r in placed)
    assert {r["role"] for r in placed} == {"web"}
    access = access_lines()
    assert [r["request_id"] for r in access] == [request_id]
    assert access[0]["status"] == "201"
    assert len(handled) == 1
    line = handled[0]
    assert EVENT_FIELDS - {"causation_id"} <= set(line), set(line)
    assert line["correlation_id"] == request_id
    assert line["event_type"] == "orders.OrderPlaced"
    assert (line["group"], line["consumer"], line["role"]) == ("inventory", "logs-inventory", "consumer:inventory")
    assert line["level"] == "DEBUG"
    assert {"time", "level", "logger", "message", "role"} <= set(line)
    assert all(isinstance(r, dict) for r in json_lines(processes.log("relay")))


def test_text_logs_stay_one_timestamp_per_line_and_hide_static_files(processes):
    processes.env_overrides.update(LOG_FORMAT="text", LOG_TIMESTAMPS="false", DEBUG="true")
    web = processes.start_web()

    for path in ("/static/admin/css/base.css", "/healthz"):
        with urllib.request.urlopen(f"{web}{path}", timeout=10):
            pass

    log = processes.log("web")
    wait_until(lambda: "/healthz" in processes.log("web"), timeout=10, what="the access line of /healthz")
    assert "/static/" not in log
    assert not any(line.lstrip().startswith("{") for line in log.splitlines())
    assert not any(line.count(":") and line[:4].isdigit() for line in log.splitlines()), "no timestamp of our own"
