"""Django's requests take turns (config.turns): WEB_DJANGO_AT_ONCE at a time per web worker, the
rest waiting in the event loop at most WEB_DJANGO_WAIT_S, then 503 `busy`; the probes and the
metrics never wait. Against the Procfile's web, on PostgreSQL and on SQLite alike."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
import requests

from tests.operations.crowd import run_crowd
from tests.operations.test_metrics import scrape, total

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_request_that_waits_too_long_for_its_turn_is_503_busy_and_the_probes_never_wait(processes, crowd_web):
    """Django's requests are taken WEB_DJANGO_AT_ONCE at a time per worker; one still waiting for
    its turn after WEB_DJANGO_WAIT_S is answered 503 `busy` with Retry-After, JSON, with its
    request id, and counted. The probes and the metrics pass the queue."""
    start, tokens, products = crowd_web
    web = start(WEB_DJANGO_AT_ONCE="1", WEB_DJANGO_WAIT_S="0.05", METRICS_TOKEN="crowd-metrics")
    probes: Counter[int] = Counter()
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            probes[requests.get(f"{web}/healthz", timeout=10).status_code] += 1

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        answers = run_crowd(web, clients=100, seconds=5, tokens=tokens, products=products)
    finally:
        done.set()
        prober.join(timeout=15)

    assert not answers.errors, answers.errors
    assert set(answers.statuses) - {200, 201} == {503}, answers.statuses
    assert answers.codes[503, "busy"] > 0, answers.codes
    assert answers.codes[503, "database_unavailable"] == 0, answers.codes
    headers, body = answers.samples[503]
    assert headers["retry-after"] == "2"
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    assert json.loads(body)["detail"] == "The server is too busy to answer this now; please retry shortly."
    assert probes[200] > 0, probes
    assert set(probes) == {200}, probes
    scraped = scrape(f"{web}/metrics", "crowd-metrics")
    refused = total(scraped, "eventshop_http_requests_total", view="product-list", method="GET", status="503")
    assert refused + total(scraped, "eventshop_http_requests_total", view="order-list", status="503") == sum(
        n for (status, _), n in answers.codes.items() if status == 503
    )
