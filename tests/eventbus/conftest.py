"""Fixtures for the event bus tests: one pass of the relay or of one consumer group, in-process,
against the real database and the per-test Redis namespace of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eventbus.consumer import Consumer, Stats
from eventbus.relay import Relay
from eventbus.transport import Transport
from tests.factories import UserFactory


@pytest.fixture
def customer():
    return UserFactory()


@pytest.fixture
def relay(transport: Transport) -> Callable[[], int]:
    """Publish every committed outbox row, like one `relay_outbox` pass; returns how many."""

    def run() -> int:
        return Relay(transport=transport).run(once=True)

    return run


@pytest.fixture
def consume(transport: Transport) -> Callable[..., Stats]:
    """Run a fresh consumer of `group` (as after a restart) until nothing is waiting."""

    def run(group: str, *, name: str = "c1") -> Stats:
        return Consumer(group, name=name, block_ms=0, transport=transport).run(once=True)

    return run


@pytest.fixture
def relay_only(settings: object) -> None:
    """The relay publishes every row (PUBLISH_ON_COMMIT off): for tests of the relay and of
    outbox rows themselves."""
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": False}  # type: ignore[attr-defined]
