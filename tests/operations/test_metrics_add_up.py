"""/metrics of the Procfile's web adds up its workers without being told where to keep their
files, and answers with what it has when the database or Redis refuses: 200, the gauges it
could read, and `eventshop_scrape_source_up{source} 0` for what it could not."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import psutil
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.api.database_outage import database_down
from tests.factories import ProductFactory, UserFactory
from tests.operations.test_metrics import samples, value
from tests.processes import RedisServer, free_port

TOKEN = "metrics-token-for-the-test"


def scrape(web: str) -> dict:
    request = urllib.request.Request(f"{web}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return samples(response.read().decode())


def place(web: str, key: str, product_id: int) -> None:
    body = json.dumps({"items": [{"product_id": product_id, "quantity": 1}]}).encode()
    request = urllib.request.Request(
        f"{web}/api/orders/", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {key}", "Connection": "close"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def metric_files_directory(web_pid: int) -> Path:
    """Where the web's workers keep their metric files (each holds its files open)."""
    for worker in psutil.Process(web_pid).children(recursive=True):
        for f in worker.open_files():
            if f.path.endswith(".db") and "eventshop-web-metrics-" in f.path:
                return Path(f.path).parent
    raise AssertionError("no worker of the web holds a metric file")


@pytest.mark.django_db(transaction=True)
def test_every_scrape_of_the_two_worker_web_counts_every_order(processes):
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ, "the test is about the web's own default"
    processes.env_overrides.update(METRICS_TOKEN=TOKEN, THROTTLES_ENABLED="false", MAX_PENDING_ORDERS_PER_CUSTOMER="0")
    product = ProductFactory(stock=100)
    key = Token.objects.get_or_create(user=UserFactory())[0].key
    web = processes.start_web(workers=2)

    for _ in range(30):
        place(web, key, product.pk)  # each on a connection of its own: either worker may take it
    counts = [value(scrape(web), "eventshop_intake_answers_total", outcome="placed") for _ in range(12)]

    assert counts == [30] * 12
    directory = metric_files_directory(processes.procs["web"].pid)
    processes.stop("web")
    assert not directory.exists(), "the web leaves its metric files behind"


@pytest.mark.django_db(transaction=True)
def test_metrics_answer_without_redis_and_say_so(processes, tmp_path):
    redis = RedisServer(tmp_path, persist=False)
    redis.start()
    processes.env_overrides.update(METRICS_TOKEN=TOKEN, REDIS_URL=redis.url)
    web = processes.start_web(workers=1)
    assert value(scrape(web), "eventshop_scrape_source_up", source="redis") == 1
    redis.stop()

    scraped = scrape(web)

    assert value(scraped, "eventshop_scrape_source_up", source="redis") == 0
    assert value(scraped, "eventshop_scrape_source_up", source="database") == 1
    assert ("eventbus_outbox_backlog", ()) in scraped
    assert not [name for name, _ in scraped if name == "eventbus_consumers"]


@pytest.mark.django_db(transaction=True)
def test_metrics_answer_when_the_database_refuses_and_say_so(processes):
    nobody = f"postgres://postgres@127.0.0.1:{free_port()}/eventshop"
    processes.env_overrides.update(METRICS_TOKEN=TOKEN, DATABASE_URL=nobody, DATABASE_POOL_TIMEOUT="0.2")
    web = processes.start_web(workers=1)

    scraped = scrape(web)

    assert value(scraped, "eventshop_scrape_source_up", source="database") == 0
    assert value(scraped, "eventshop_scrape_source_up", source="redis") == 1
    assert ("eventbus_outbox_backlog", ()) not in scraped
    assert [name for name, _ in scraped if name == "eventbus_relays"]
    assert [name for name, _ in scraped if name == "eventshop_http_requests_total"]


@pytest.mark.django_db
def test_a_database_failing_mid_scrape_leaves_its_gauges_out_not_the_scrape(settings):
    settings.METRICS_TOKEN = TOKEN
    client = APIClient(raise_request_exception=False)

    with database_down() as refused:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert refused, "the scrape never asked the database"
    assert response.status_code == 200
    scraped = samples(response.content.decode())
    assert value(scraped, "eventshop_scrape_source_up", source="database") == 0
    assert value(scraped, "eventshop_scrape_source_up", source="redis") == 1
    assert ("eventbus_outbox_backlog", ()) not in scraped
