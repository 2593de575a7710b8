"""A failing handler is retried with backoff, without stalling the other messages; the
schedule lives in Redis, so it survives the consumer that made it."""

from __future__ import annotations

import time

import pytest

from eventbus.models import DeadLetter, ProcessedEvent
from eventbus.runtime.consumer import RetryPolicy
from inventory.models import Product
from tests.factories import ProductFactory
from tests.resilience.streams import message_id, pending, retry_schedule

pytestmark = pytest.mark.django_db(transaction=True)


class FixedDelay(RetryPolicy):
    """Waits exactly base_s before every retry, so a test knows when a retry is due."""

    def delay(self, attempt: int) -> float:
        return self.base_s


def stock(product: Product) -> int:
    return Product.objects.get(pk=product.pk).stock


@pytest.mark.eventbus(RETRY={"default": {"base_s": 0.05, "cap_s": 0.2, "max_attempts": 3}})
def test_message_failing_twice_then_succeeding_is_applied_once_on_the_third_attempt(
    handler, publish_flaky, consumer, transport
):
    product = ProductFactory(stock=0)
    handler.fail(product, times=2)
    publish_flaky(product)
    c1 = consumer()

    for _ in range(10):  # as `consume_inventory --once --consumer c1` run again after each backoff
        c1.run(once=True)
        if stock(product) or DeadLetter.objects.exists():
            break
        time.sleep(0.25)  # past the longest backoff

    assert list(DeadLetter.objects.values_list("error", flat=True)) == []
    assert handler.calls(product) == 3
    assert stock(product) == 1, "applied once: the failed attempts' restocks were rolled back"
    assert (c1.stats.retried, c1.stats.processed) == (2, 1)
    assert ProcessedEvent.objects.filter(consumer_group="inventory").count() == 1
    assert pending(transport) == {}
    assert retry_schedule(transport) == {}


@pytest.mark.eventbus(
    RETRY={"default": {"base_s": 0.01, "cap_s": 0.05, "max_attempts": 3}, "inventory": {"max_attempts": 1}}
)
def test_a_consumer_follows_its_own_groups_retry_policy(handler, publish_flaky, consumer, transport):
    product = ProductFactory(stock=0)
    handler.fail_always(product)
    publish_flaky(product)

    stats = consumer("inventory").run(once=True)

    assert (stats.retried, stats.dead) == (0, 1), "inventory allows one attempt, the default three"
    assert DeadLetter.objects.get().attempts == 1
    assert handler.calls(product) == 1


@pytest.mark.eventbus(RETRY={"default": {"base_s": 0.01, "cap_s": 0.05, "max_attempts": 50}})
def test_a_message_waiting_for_its_retry_does_not_hold_up_the_messages_after_it(
    handler, publish_flaky, consumer, transport
):
    stuck, second, third = ProductFactory(stock=0), ProductFactory(stock=0), ProductFactory(stock=0)
    handler.fail_always(stuck)
    stuck_event, *_ = publish_flaky(stuck, second, third)
    c1 = consumer(batch_size=1)  # each message is a read of its own

    c1.run(once=True)

    assert (stock(stuck), stock(second), stock(third)) == (0, 1, 1)
    stuck_id = message_id(transport, stuck_event)
    assert list(retry_schedule(transport)) == [f"orders|{stuck_id}"]
    assert list(pending(transport)) == [stuck_id], "the later messages are acknowledged"

    handler.succeed(stuck)
    time.sleep(0.1)
    c1.run(once=True)

    assert stock(stuck) == 1
    assert pending(transport) == {}


def test_a_retry_scheduled_by_a_stopped_consumer_is_applied_by_a_new_one_once_due(
    handler, publish_flaky, consumer, transport
):
    product = ProductFactory(stock=0)
    handler.fail(product, times=1)
    (envelope,) = publish_flaky(product)
    consumer(name="a", policy=FixedDelay(base_s=0.3, cap_s=0.3, max_attempts=3)).run(once=True)
    # "a" is gone; what it knew about the retry is in Redis.
    assert list(retry_schedule(transport)) == [f"orders|{message_id(transport, envelope)}"]
    b = consumer(name="b")

    b.run(once=True)
    assert stock(product) == 0, "not retried before it is due"

    time.sleep(0.35)
    b.run(once=True)

    assert stock(product) == 1
    assert handler.calls(product) == 2
    assert b.stats.processed == 1
    assert retry_schedule(transport) == {}
    assert pending(transport) == {}


def test_restarting_a_consumer_does_not_count_as_an_attempt_of_its_waiting_retries(
    handler, publish_flaky, consumer, transport
):
    product = ProductFactory(stock=0)
    handler.fail(product, times=2)
    publish_flaky(product)
    policy = FixedDelay(base_s=0.2, cap_s=0.2, max_attempts=3)
    consumer(name="c1", policy=policy).run(once=True)  # attempt 1 fails

    consumer(name="c1", policy=policy).run(once=True)  # restarted before the retry is due
    for _ in range(2):
        time.sleep(0.25)
        consumer(name="c1", policy=policy).run(once=True)  # restarted again: attempts 2 and 3

    assert list(DeadLetter.objects.values_list("error", flat=True)) == []
    assert handler.calls(product) == 3
    assert stock(product) == 1


@pytest.mark.eventbus(CLAIM_MIN_IDLE_MS=50)
def test_a_message_waiting_for_its_retry_is_not_reclaimed_as_orphaned_by_another_consumer(
    handler, publish_flaky, consumer, transport
):
    product = ProductFactory(stock=0)
    handler.fail(product, times=2)
    publish_flaky(product)
    policy = FixedDelay(base_s=0.3, cap_s=0.3, max_attempts=3)
    consumer(name="a", policy=policy).run(once=True)  # attempt 1 fails; due again in 0.3 s
    time.sleep(0.1)  # idle longer than CLAIM_MIN_IDLE_MS, but not yet due

    consumer(name="b", policy=policy).run(once=True)  # its reclaim pass sees the message
    assert handler.calls(product) == 1

    time.sleep(0.25)
    consumer(name="c", policy=policy).run(once=True)  # attempt 2 fails
    time.sleep(0.35)
    consumer(name="d", policy=policy).run(once=True)  # attempt 3 succeeds

    assert list(DeadLetter.objects.values_list("error", flat=True)) == []
    assert handler.calls(product) == 3
    assert stock(product) == 1
