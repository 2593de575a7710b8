"""A consumer group that vanished (its stream deleted, or Redis restarted without persistence)
is re-created by the running consumer, which says so and keeps consuming."""

from __future__ import annotations

import logging
import time

import pytest

from inventory.models import Product
from tests.factories import ProductFactory
from tests.resilience.background import running
from tests.resilience.streams import pending

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_running_consumer_recreates_its_vanished_group_warns_and_keeps_consuming(
    publish_flaky, consumer, transport, caplog
):
    caplog.set_level(logging.WARNING, logger="eventbus.runtime.consumer")
    first, second = ProductFactory(stock=0), ProductFactory(stock=0)
    publish_flaky(first)
    with running(consumer(block_ms=2000)) as background:
        background.wait_until(lambda: Product.objects.get(pk=first.pk).stock == 1, what="the first event")
        background.wait_until(lambda: not pending(transport), what="the first event to be acknowledged")
        time.sleep(0.2)  # by now it waits in XREADGROUP ... BLOCK, where a deletion hits hardest

        transport.client.delete(transport.key("orders"))
        background.wait_until(
            lambda: "inventory" in {g.name for g in transport.groups("orders")}, what="the group to be re-created"
        )
        publish_flaky(second)
        background.wait_until(lambda: Product.objects.get(pk=second.pk).stock == 1, what="the second event")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("consumer group inventory vanished") and "re-creating it" in w for w in warnings), warnings
