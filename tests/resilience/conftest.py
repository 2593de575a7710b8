"""Fixtures for the resilience tests: a fast retry policy, the scripted `Flaky` handler, and
ways to publish and consume it against the real database and the per-test Redis namespace.

Settings a test needs (a small claim idle time, another retry policy) are given with
`@pytest.mark.eventbus(NAME=value, ...)`: they are applied before the transport and any
consumer is built, since both read settings.EVENTBUS when they are created.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from eventbus.messages.events import Envelope
from eventbus.redis.transport import Transport, get_transport
from eventbus.runtime.consumer import Consumer
from inventory.models import Product
from tests.factories import ProductFactory
from tests.resilience.flaky import HandlerScript, record_flaky, script

FAST = {
    "RETRY": {"default": {"base_s": 0.01, "cap_s": 0.05, "max_attempts": 3}},
    "CLAIM_MIN_IDLE_MS": 200,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "eventbus(**settings): settings.EVENTBUS entries for this test")


@pytest.fixture
def bus_settings(request: pytest.FixtureRequest, settings: object, key_prefix: str) -> dict:
    """settings.EVENTBUS with fast retries, then the test's own `eventbus` marker on top."""
    marker = request.node.get_closest_marker("eventbus")
    overrides = marker.kwargs if marker else {}
    settings.EVENTBUS = {**settings.EVENTBUS, **FAST, **overrides}  # type: ignore[attr-defined]
    return settings.EVENTBUS  # type: ignore[attr-defined]


@pytest.fixture
def transport(bus_settings: dict) -> Transport:
    return get_transport()


@pytest.fixture(autouse=True)
def handler() -> Iterator[HandlerScript]:
    """The Flaky handlers' script: well-behaved unless the test says otherwise."""
    script.reset()
    yield script
    script.reset()


@pytest.fixture
def product(handler: HandlerScript) -> Product:
    """A product (no stock) whose Flaky events the inventory handler refuses."""
    product = ProductFactory(stock=0)
    handler.refuse(product)
    return product


@pytest.fixture
def publish_flaky(relay: Callable[[], int]) -> Callable[..., list[Envelope]]:
    """Record one Flaky event per product through the outbox and relay them to the stream."""

    def publish(*products: object) -> list[Envelope]:
        envelopes = record_flaky(*products)
        relay()
        return envelopes

    return publish


@pytest.fixture
def consumer(transport: Transport) -> Callable[..., Consumer]:
    """Build a consumer (after the test's settings are in place); block_ms=0 for run(once=True)."""

    def build(group: str = "inventory", *, name: str = "c1", **options: object) -> Consumer:
        return Consumer(group, name=name, block_ms=options.pop("block_ms", 0), transport=transport, **options)

    return build
