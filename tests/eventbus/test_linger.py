"""Under load a consumer reads at most once per CONSUMER_LINGER_MS, so that its batches gather
(eventbus.runtime.consumer.Consumer._let_the_next_batch_gather); a full batch, or a read that had
to wait for its messages, never lingers."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from eventbus.runtime.consumer import Consumer
from inventory.models import Product
from orders.services import order_place
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)

LINGER_S = 0.8


@pytest.fixture
def linger(settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "CONSUMER_LINGER_MS": int(LINGER_S * 1000)}


@pytest.fixture
def product():
    return ProductFactory(stock=50)


@pytest.fixture
def place(customer, relay, product):
    """Place `n` orders of one unit and publish them at once; returns when they are on the stream."""

    def run(n: int = 1) -> float:
        for _ in range(n):
            order_place(customer=customer, items=[(product.pk, 1)])
        relay()
        return time.monotonic()

    return run


def started(transport, **options) -> Consumer:
    """An inventory consumer past its first step (groups made, nothing pending to take over)."""
    consumer = Consumer("inventory", name="c1", block_ms=2000, transport=transport, **options)
    consumer.step(once=True)
    return consumer


def batches_until(consumer: Consumer, processed: int, timeout: float = 20) -> tuple[list[int], float]:
    """Step until `processed` messages were handled: the size of each batch, and when the step
    that handled the last one ended."""
    sizes, deadline = [], time.monotonic() + timeout
    while consumer.stats.processed < processed:
        assert time.monotonic() < deadline, f"processed {consumer.stats.processed} of {processed}"
        before = consumer.stats.processed
        consumer.step(once=False)
        if consumer.stats.processed > before:
            sizes.append(consumer.stats.last_batch_size)
    return sizes, time.monotonic()


def in_a_thread(work) -> threading.Thread:
    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_consumer_that_found_its_messages_waiting_reads_again_only_after_the_linger(
    linger, transport, place, product
):
    consumer = started(transport)
    place(2)
    read_from = time.monotonic()

    sizes, done = batches_until(consumer, 2)

    assert sizes == [2]
    assert done - read_from >= LINGER_S
    assert Product.objects.get(pk=product.pk).stock == 48


def test_what_arrives_one_by_one_during_the_linger_is_read_as_one_batch(linger, transport, place, product):
    consumer = started(transport)
    place(1)

    def one_by_one() -> None:  # while the consumer lingers after its first batch
        time.sleep(0.05)
        for _ in range(3):
            place(1)
            time.sleep(0.03)

    arriving = in_a_thread(one_by_one)
    sizes, _ = batches_until(consumer, 4)
    arriving.join()

    assert sizes == [1, 3]  # without the linger: [1, 1, 1, 1], a transaction each
    assert Product.objects.get(pk=product.pk).stock == 46


def test_a_full_batch_does_not_linger(linger, transport, place):
    consumer = started(transport, batch_size=2)
    place(3)
    read_from = time.monotonic()

    sizes, done = batches_until(consumer, 2)

    assert sizes == [2]
    assert done - read_from < LINGER_S


def test_a_read_that_waited_for_its_message_does_not_linger(linger, transport, place):
    """Light load: the message came after the read began waiting, so the consumer handles it at
    once and goes back to waiting for the next, which it would answer as soon."""
    consumer = started(transport)
    published: list[float] = []
    arriving = in_a_thread(lambda: (time.sleep(LINGER_S / 2), published.append(place(1))))

    sizes, done = batches_until(consumer, 1)
    arriving.join()

    assert sizes == [1]
    # It did not linger after handling it (which would take it to LINGER_S after `published`,
    # taken once relay() returned: the message was on the stream from the commit on).
    assert done - published[0] < LINGER_S / 2
