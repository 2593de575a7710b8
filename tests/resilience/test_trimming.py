"""`Relay.maintain()` trims stream entries every group has acknowledged, and never one that a
group has not read yet or has not acknowledged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventbus.runtime.relay import Relay
from tests.factories import ProductFactory
from tests.resilience.flaky import record_flaky
from tests.resilience.streams import entry_ids, pending

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def small_stream_nodes(transport) -> Iterator[None]:
    """XTRIM MINID ~ drops whole macro nodes only: two entries a node makes trimming visible.
    Applies to streams created while it is set; the server's value is restored afterwards."""
    (previous,) = transport.client.config_get("stream-node-max-entries").values()
    transport.client.config_set("stream-node-max-entries", 2)
    yield
    transport.client.config_set("stream-node-max-entries", previous)


@pytest.fixture
def publish(transport):
    """Relay Flaky events without the relay's own housekeeping, so only maintain() trims."""

    def run(count: int) -> list[str]:
        before = set(entry_ids(transport))
        record_flaky(*[ProductFactory(stock=0) for _ in range(count)])
        relay = Relay(transport=transport)
        relay.ensure_groups()
        relay.drain()
        return [i for i in entry_ids(transport) if i not in before]

    return run


def test_entries_a_group_has_not_read_yet_are_kept_until_it_acknowledges_them(publish, consumer, transport):
    published = publish(10)
    consumer("inventory").run(once=True)  # "notifications" has read nothing yet

    Relay(transport=transport).maintain()
    assert entry_ids(transport) == published

    consumer("notifications").run(once=True)
    Relay(transport=transport).maintain()

    remaining = entry_ids(transport)
    assert len(remaining) < 10
    assert remaining == published[len(published) - len(remaining) :], "only the oldest go"


def test_entries_a_group_has_read_but_not_acknowledged_are_kept(publish, consumer, transport):
    older = publish(6)
    consumer("inventory").run(once=True)
    consumer("notifications").run(once=True)
    newer = publish(4)
    consumer("inventory").run(once=True)
    transport.read("notifications", "died", {"orders": ">"}, count=10, block_ms=None)
    assert set(pending(transport, group="notifications")) == set(newer)

    Relay(transport=transport).maintain()

    remaining = entry_ids(transport)
    assert set(newer) <= set(remaining), "nothing still pending is trimmed"
    assert len(remaining) < len(older) + len(newer), "what everyone acknowledged is"
