"""/metrics: who may read it, and what it says after a real flow through the web, the relay and
the consumers running as processes (prometheus-client's multiprocess mode, as `make run` runs)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import ProductFactory, UserFactory
from tests.processes import free_port, wait_until

GROUPS = ("inventory", "orders", "notifications")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def total(scraped: dict, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scraped.items() if n == name and wanted <= set(ls))


# --- who may read it ----------------------------------------------------------------------------


@pytest.mark.django_db
class TestWhoMayRead:
    def test_a_loopback_client_without_a_token_is_refused_unless_allowed(self, settings):
        settings.DEBUG, settings.METRICS_ALLOW_LOOPBACK, settings.METRICS_TOKEN = False, False, ""

        assert APIClient().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403

    def test_a_loopback_client_may_read_when_allowed(self, settings):
        settings.METRICS_ALLOW_LOOPBACK = True

        response = APIClient().get("/metrics", REMOTE_ADDR="127.0.0.1")

        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        assert "eventbus_outbox_backlog" in response.content.decode()

    def test_a_loopback_client_may_read_with_debug_on(self, settings):
        settings.DEBUG, settings.METRICS_ALLOW_LOOPBACK = True, False

        assert APIClient().get("/metrics", REMOTE_ADDR="::1").status_code == 200

    def test_a_client_elsewhere_without_the_token_is_refused_even_when_loopback_is_allowed(self, settings):
        settings.METRICS_ALLOW_LOOPBACK, settings.METRICS_TOKEN = True, "s3cret-token"

        assert APIClient().get("/metrics", REMOTE_ADDR="203.0.113.8").status_code == 403

    def test_the_token_opens_it_from_anywhere(self, settings):
        settings.METRICS_TOKEN = "s3cret-token"

        response = APIClient().get("/metrics", REMOTE_ADDR="203.0.113.8", HTTP_AUTHORIZATION="Bearer s3cret-token")

        assert response.status_code == 200

    def test_a_wrong_token_is_refused_even_from_loopback(self, settings):
        settings.METRICS_TOKEN, settings.METRICS_ALLOW_LOOPBACK = "s3cret-token", True

        response = APIClient().get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer guess")

        assert response.status_code == 403

    def test_scrapes_are_never_throttled(self, settings):
        settings.METRICS_TOKEN = "s3cret-token"
        settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "anon": "1/min"}
        client = APIClient()

        answers = {
            client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code
            for _ in range(5)
        }

        assert answers == {200}


# --- what it says after a real flow ---------------------------------------------------------------


def scrape(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return samples(response.read().decode())


@pytest.mark.django_db(transaction=True)
def test_after_orders_flow_the_webs_metrics_count_what_every_process_did(processes, tmp_path):
    token = "metrics-token-for-the-test"
    processes.env_overrides.update(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"), METRICS_TOKEN=token)
    (tmp_path / "prometheus").mkdir()
    in_stock = ProductFactory(stock=100)
    scarce = ProductFactory(stock=1)
    customer = UserFactory()
    web = processes.start_web(workers=2)
    processes.start_relay()
    for group in GROUPS:
        processes.start_consumer(group, f"metrics-{group}")
    processes.start_mailer()
    key = Token.objects.get_or_create(user=customer)[0].key

    def place(product_id: int, quantity: int) -> None:
        body = json.dumps({"items": [{"product_id": product_id, "quantity": quantity}]}).encode()
        request = urllib.request.Request(
            f"{web}/api/orders/", data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Token {key}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201  # placed by the web's order desk

    for _ in range(5):
        place(in_stock.pk, 1)
    place(scarce.pk, 2)  # rejected: not enough stock

    def settled() -> bool:
        scraped = scrape(f"{web}/metrics", token)
        return value(scraped, "eventshop_order_stage_seconds_count", stage="notified") >= 6

    wait_until(settled, timeout=40, what="six orders notified, as /metrics tells")
    scraped = scrape(f"{web}/metrics", token)

    assert value(scraped, "eventshop_orders_placed_total") == 6
    assert value(scraped, "eventshop_orders_finalized_total", status="confirmed") == 5
    assert value(scraped, "eventshop_orders_finalized_total", status="rejected") == 1
    assert value(scraped, "eventshop_order_stage_seconds_count", stage="reserved") == 5
    assert value(scraped, "eventshop_order_stage_seconds_count", stage="confirmed") == 5
    assert value(scraped, "eventshop_order_stage_seconds_count", stage="notified") == 6
    assert value(scraped, "eventshop_emails_sent_total") == 6, "notified: a mail server accepted the e-mail"
    assert value(scraped, "eventshop_emails_waiting") == 0
    placed = {"group": "inventory", "type": "orders.OrderPlaced", "outcome": "ok"}
    assert value(scraped, "eventbus_events_handled_total", **placed) == 6
    assert total(scraped, "eventbus_events_handled_total", group="notifications", outcome="ok") == 6
    assert total(scraped, "eventbus_events_published_total", stream="orders", type="orders.OrderPlaced") >= 6
    reserved = {"group": "orders", "type": "inventory.InventoryReserved"}
    assert value(scraped, "eventbus_handler_duration_seconds_count", **reserved) == 5
    failed = {"group": "orders", "type": "inventory.InventoryReservationFailed"}
    assert value(scraped, "eventbus_handler_duration_seconds_count", **failed) == 1
    assert total(scraped, "eventshop_http_requests_total", view="order-list", method="POST", status="201") == 6
    assert value(scraped, "eventshop_intake_answers_total", outcome="placed") == 6
    for group in GROUPS:
        assert value(scraped, "eventbus_consumers", group=group) == 1
    assert value(scraped, "eventbus_relays") == 1
    # Rows published on commit stay in the outbox until the relay's next turn deletes them.
    wait_until(
        lambda: value(scrape(f"{web}/metrics", token), "eventbus_outbox_backlog") == 0,
        timeout=15, what="the outbox to be empty, as /metrics tells",
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_consumer_serves_its_own_metrics_on_its_port(processes):
    port = free_port()
    product = ProductFactory(stock=10)
    processes.start_relay()
    processes.start_consumer("inventory", "own-port", "--metrics-port", str(port))
    from orders.services import order_place

    order_place(customer=UserFactory(), items=[(product.pk, 1)])

    def handled() -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            scraped = samples(response.read().decode())
        return value(
            scraped, "eventbus_events_handled_total", group="inventory", type="orders.OrderPlaced", outcome="ok"
        )

    wait_until(lambda: handled() == 1, timeout=30, what="the consumer's own /metrics to count the order")
