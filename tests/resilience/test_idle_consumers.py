"""Consumers that have been idle for long with nothing pending are removed from their group;
one still holding pending messages is kept (deleting it would orphan them)."""

from __future__ import annotations

import time

import pytest

from tests.factories import ProductFactory
from tests.resilience.streams import pending

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.eventbus(CONSUMER_IDLE_REMOVE_MS=100, CLAIM_MIN_IDLE_MS=60_000),
]


def consumer_names(transport) -> set[str]:
    return {c["name"] for c in transport.consumers("orders", "inventory")}


def test_a_consumer_idle_for_long_with_nothing_pending_is_removed_from_the_group(relay, consumer, transport):
    relay()
    transport.client.xgroup_createconsumer(transport.key("orders"), "inventory", "gone-quiet")
    time.sleep(0.15)
    assert "gone-quiet" in consumer_names(transport)

    consumer(name="alive").run(once=True)

    assert "gone-quiet" not in consumer_names(transport)


def test_an_idle_consumer_still_holding_pending_messages_is_kept(publish_flaky, consumer, transport):
    publish_flaky(ProductFactory(stock=0))
    transport.read("inventory", "holding", {"orders": ">"}, count=10, block_ms=None)
    time.sleep(0.15)

    consumer(name="alive").run(once=True)

    assert "holding" in consumer_names(transport)
    assert set(pending(transport).values()) == {"holding"}
