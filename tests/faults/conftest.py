"""Harness for the crash tests: the relay and consumers run as real `manage.py` subprocesses
against the test database; a test that stops Redis gets a private redis-server (free port on
127.0.0.1, append-only file on) and never touches a shared one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventbus.redis.transport import reset_transport
from tests.processes import RedisServer

pytestmark = pytest.mark.faults


@pytest.fixture(autouse=True)
def unlimited_pending_orders(settings: object) -> None:
    """These tests place hundreds of orders for a few customers faster than the pipeline
    settles them; the per-customer limit of pending orders is not what they test."""
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0  # type: ignore[attr-defined]


@pytest.fixture
def private_redis(
    request: pytest.FixtureRequest, tmp_path: Path, settings: object, key_prefix: str
) -> Iterator[RedisServer]:
    """A private Redis with an append-only file; `@pytest.mark.parametrize("private_redis",
    [False], indirect=True)` for one that keeps nothing on disk."""
    server = RedisServer(tmp_path / "redis", persist=getattr(request, "param", True))
    server.directory.mkdir()
    server.start()
    shared_url = settings.REDIS_URL  # type: ignore[attr-defined]
    settings.REDIS_URL = server.url  # type: ignore[attr-defined]
    reset_transport()
    yield server
    settings.REDIS_URL = shared_url  # type: ignore[attr-defined]
    reset_transport()
    server.stop()
