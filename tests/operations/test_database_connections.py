"""The web holds a bounded number of PostgreSQL connections whatever the crowd: 300 clients
against the Procfile's web (2 workers) stay within the pool's size per worker, and a request
that cannot get a connection in time is answered 503 with Retry-After, never left hanging."""

from __future__ import annotations

import threading
from collections import Counter

import psutil
import pytest
from django.db import connection

from tests.concurrency import another_connection
from tests.factories import ProductFactory, UserFactory
from tests.operations.conftest import APP_NAME, WORKERS
from tests.operations.crowd import run_crowd

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL's connections"),
]


class ConnectionWatch:
    """Samples, every 0.2 s, the web's connections to the test database (pg_stat_activity, by
    the application name the web's processes give libpq) and how many each worker holds."""

    def __init__(self, web_pid: int) -> None:
        self.web_pid = web_pid
        self.most = 0
        self.most_per_worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        db = connection.settings_dict
        with another_connection(autocommit=True) as conn:
            while not self._stop.wait(0.2):
                ports = [
                    port
                    for (port,) in conn.execute(
                        "SELECT client_port FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                        (db["NAME"], APP_NAME),
                    )
                ]
                self.most = max(self.most, len(ports))
                self.most_per_worker = max(self.most_per_worker, *self._per_worker(set(ports)).values(), 0)

    def _per_worker(self, ports: set[int]) -> Counter[int]:
        held: Counter[int] = Counter()
        for worker in psutil.Process(self.web_pid).children(recursive=True):
            try:
                held[worker.pid] = sum(1 for c in worker.net_connections("tcp") if c.laddr.port in ports)
            except psutil.NoSuchProcess:
                pass
        return held


def test_a_crowd_of_300_clients_holds_at_most_12_connections_per_worker_and_gets_no_5xx(processes, crowd_web):
    start, tokens, products = crowd_web
    web = start()

    with ConnectionWatch(processes.procs["web"].pid) as watch:
        answers = run_crowd(web, clients=300, seconds=20, tokens=tokens, products=products)
    held = f"connections at most {watch.most} ({watch.most_per_worker} in one worker)"
    print(f"crowd: {answers.figures()} {dict(answers.codes)}, {held}")  # docs/benchmarks.md

    assert sum(answers.statuses.values()) > 1000, answers
    assert answers.server_errors == 0, answers.samples
    assert not answers.errors, answers.errors
    assert watch.most <= 12 * WORKERS, watch.most
    assert 0 < watch.most_per_worker <= 12, watch.most_per_worker


def test_a_request_that_waits_too_long_for_a_connection_is_503_with_retry_after(processes, crowd_web):
    start, tokens, products = crowd_web
    # One connection for Django's requests: the order desk keeps INTAKE_DESK_CONNECTIONS + 1 (3).
    # No turns (WEB_DJANGO_AT_ONCE=0): every request waits for the pool itself.
    web = start(DATABASE_POOL_MAX="4", DATABASE_POOL_MIN="1", DATABASE_POOL_TIMEOUT="0.01", WEB_DJANGO_AT_ONCE="0")

    answers = run_crowd(web, clients=100, seconds=5, tokens=tokens, products=products)

    assert not answers.errors, answers.errors  # every request answered, none left hanging
    assert set(answers.statuses) - {200, 201, 202} == {503}, answers.statuses
    assert answers.codes[503, "database_unavailable"] > 0, answers.codes
    headers, _ = answers.samples[503]
    assert headers["retry-after"] == "2"
    assert headers["content-type"] == "application/json"


def test_the_relay_and_each_consumer_hold_a_fixed_few_connections(processes):
    """One connection per thread that queries, for as long as the process runs: however many
    orders go through, the relay and each consumer hold at most 2."""
    products = [ProductFactory(stock=1_000).pk for _ in range(5)]
    customers = [UserFactory() for _ in range(5)]
    names = ["relay", *(f"consume_{group}" for group in ("inventory", "orders", "notifications"))]
    for name in names:
        processes.env_overrides["PGAPPNAME"] = f"{APP_NAME}-{name}"
        if name == "relay":
            processes.start_relay()
        else:
            processes.start_consumer(name.removeprefix("consume_"), f"conn-{name}")
    from orders.services import order_place

    most: Counter[str] = Counter()
    for i in range(60):
        order_place(customer=customers[i % 5], items=[(products[i % 5], 1)])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity WHERE application_name LIKE %s GROUP BY 1",
                [f"{APP_NAME}-%"],
            )
            for name, n in cursor.fetchall():
                most[name] = max(most[name], n)

    assert set(most) == {f"{APP_NAME}-{name}" for name in names}, most
    print(f"connections held at most: {dict(most)}")
    assert max(most.values()) <= 2, most
