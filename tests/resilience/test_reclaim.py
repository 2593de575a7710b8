"""Messages left pending by a consumer that died are claimed by a live one of the same group
(XAUTOCLAIM after CLAIM_MIN_IDLE_MS, following its cursor); deleted entries are acknowledged;
a message that keeps killing its consumers ends in dead letters instead of looping forever."""

from __future__ import annotations

import time

import pytest

from eventbus.models import DeadLetter
from inventory.models import Product
from tests.factories import ProductFactory
from tests.resilience.streams import message_id, pending

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.eventbus(CLAIM_MIN_IDLE_MS=200)]

IDLE = 0.25  # a little longer than CLAIM_MIN_IDLE_MS


def stock(product: Product) -> int:
    return Product.objects.get(pk=product.pk).stock


def read_and_die(transport, name: str = "dead-consumer", position: str = ">") -> list[str]:
    """XREADGROUP as a consumer that then dies without acknowledging anything."""
    return [m.id for m in transport.read("inventory", name, {"orders": position}, count=100, block_ms=None)]


def test_a_message_left_pending_by_a_dead_consumer_is_claimed_and_processed_after_the_idle_time(
    publish_flaky, consumer, transport
):
    product = ProductFactory(stock=0)
    (envelope,) = publish_flaky(product)
    assert read_and_die(transport) == [message_id(transport, envelope)]
    time.sleep(IDLE)

    stats = consumer(name="alive").run(once=True)

    assert (stats.reclaimed, stats.processed) == (1, 1)
    assert stock(product) == 1
    assert pending(transport) == {}


def test_a_pending_message_is_not_claimed_before_it_has_been_idle_long_enough(publish_flaky, consumer, transport):
    product = ProductFactory(stock=0)
    (envelope,) = publish_flaky(product)
    read_and_die(transport)

    stats = consumer(name="alive").run(once=True)  # at once: its owner may only be slow

    assert (stats.reclaimed, stats.processed) == (0, 0)
    assert stock(product) == 0
    assert pending(transport) == {message_id(transport, envelope): "dead-consumer"}


def test_more_pending_messages_than_one_claim_page_are_all_claimed(publish_flaky, consumer, transport):
    product = ProductFactory(stock=0)
    publish_flaky(*[product] * 12)
    assert len(read_and_die(transport)) == 12
    time.sleep(IDLE)

    stats = consumer(name="alive", batch_size=5).run(once=True)  # XAUTOCLAIM COUNT 5: three pages

    assert (stats.reclaimed, stats.processed) == (12, 12)
    assert stock(product) == 12
    assert pending(transport) == {}


def test_a_pending_entry_deleted_from_the_stream_is_acknowledged_not_processed(
    handler, publish_flaky, consumer, transport
):
    product = ProductFactory(stock=0)
    publish_flaky(product)
    (entry_id,) = read_and_die(transport)
    transport.client.xdel(transport.key("orders"), entry_id)
    time.sleep(IDLE)

    stats = consumer(name="alive").run(once=True)

    assert pending(transport) == {}
    assert stats.processed == 0
    assert handler.calls(product) == 0
    assert not DeadLetter.objects.exists()


def test_a_deleted_entry_in_a_consumers_own_pending_list_is_acknowledged_when_it_restarts(
    handler, publish_flaky, consumer, transport
):
    product = ProductFactory(stock=0)
    publish_flaky(product)
    (entry_id,) = read_and_die(transport, name="c1")
    transport.client.xdel(transport.key("orders"), entry_id)

    stats = consumer(name="c1").run(once=True)

    assert pending(transport) == {}
    assert stats.processed == 0
    assert handler.calls(product) == 0
    assert not DeadLetter.objects.exists()


def test_a_message_delivered_more_often_than_max_attempts_is_dead_lettered_instead_of_looping(
    handler, publish_flaky, consumer, transport
):
    product = ProductFactory(stock=0)
    (envelope,) = publish_flaky(product)
    read_and_die(transport)
    for _ in range(3):  # restarted, re-read its own pending message, died again while handling it
        read_and_die(transport, position="0")
    time.sleep(IDLE)

    stats = consumer(name="alive").run(once=True)  # the fifth delivery; max_attempts is 3

    row = DeadLetter.objects.get()
    assert row.error.startswith("delivered 5 times without completing (limit 3)")
    assert (row.message_id, row.event_id, row.attempts) == (message_id(transport, envelope), envelope.event_id, 5)
    assert (stats.dead, stats.processed) == (1, 0)
    assert handler.calls(product) == 0, "not handed to the handler once more"
    assert pending(transport) == {}
