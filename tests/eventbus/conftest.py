"""Fixtures for the event bus tests: one pass of one consumer group, in-process, against the real
database and the per-test Redis namespace of tests/conftest.py (which also has the relay's pass
and the `customer`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from eventbus.messages import events, upcasting
from eventbus.redis.transport import Transport
from eventbus.runtime.consumer import Consumer, Stats


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


@pytest.fixture
def event_registry() -> Iterator[Callable[[], None]]:
    """Event classes and upcasters a test defines are forgotten after it. The test may also call
    the fixture's value to forget them at once: this process then reads events as the release
    before did (the apps' events only)."""
    registries = (events._BY_VERSION, events._NEWEST, upcasting._UPCASTERS)
    saved = [dict(r) for r in registries]

    def forget() -> None:
        for registry, entries in zip(registries, saved, strict=True):
            registry.clear()
            registry.update(entries)  # type: ignore[arg-type]

    yield forget
    forget()
