"""/healthz tells a load balancer whether this web process can serve. The database down is
down (503); Redis down is reported but is not down (200), because orders are still taken then.
It never shows an error's text: the page is public."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from eventbus.redis.transport import reset_transport
from tests.api.database_outage import SERVER_GONE, database_down

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> APIClient:
    return APIClient(raise_request_exception=False)


@pytest.fixture
def redis_silent(settings, key_prefix: str) -> Iterator[None]:
    """Redis at a socket that accepts connections and never answers: a stalled server."""
    shared_url = settings.REDIS_URL
    with socket.create_server(("127.0.0.1", 0)) as silent:
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        reset_transport()
        yield
    settings.REDIS_URL = shared_url
    reset_transport()


def test_with_the_database_and_redis_answering_the_node_is_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_with_the_database_down_the_node_is_down_and_says_no_more(client):
    with database_down() as refused:
        response = client.get("/healthz")

    assert refused, "the health check never asked the database"
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unavailable", "redis": "ok"}
    assert SERVER_GONE not in response.content.decode()


@pytest.mark.usefixtures("redis_down")
def test_with_redis_down_the_node_stays_in_and_reports_it(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "unavailable"}
    assert "refused" not in response.content.decode().lower(), "no error text"


@pytest.mark.usefixtures("redis_silent")
def test_a_redis_that_accepts_but_never_answers_does_not_hold_the_health_check(client):
    started = time.monotonic()
    response = client.get("/healthz")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["redis"] == "unavailable"
    assert elapsed < 2.0, f"the health check took {elapsed:.1f} s"
