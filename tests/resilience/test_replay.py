"""Replaying a dead letter (`manage.py deadletters replay`) delivers it again to the group that
failed it, and only to that group; the outcome lands on the same DeadLetter row."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from eventbus.models import DeadLetter
from inventory.models import Product
from tests.resilience.streams import pending

pytestmark = pytest.mark.django_db(transaction=True)


def stock(product: Product) -> int:
    return Product.objects.get(pk=product.pk).stock


def deadletters(*args: str) -> str:
    out = StringIO()
    call_command("deadletters", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def dead_letter(product, publish_flaky, consumer) -> DeadLetter:
    """Inventory refused a Flaky event that notifications, reading the same stream, handled."""
    publish_flaky(product)
    consumer("notifications", name="n1").run(once=True)
    consumer("inventory", name="i1").run(once=True)
    return DeadLetter.objects.get(consumer_group="inventory")


def test_a_replayed_dead_letter_that_succeeds_is_applied_and_resolved(dead_letter, product, handler, consumer):
    handler.succeed(product)

    assert "replayed 1 dead letter(s)" in deadletters("replay", str(dead_letter.pk))
    assert DeadLetter.objects.get().status == DeadLetter.Status.REPLAYED
    stats = consumer("inventory", name="i1").run(once=True)

    assert stats.processed == 1
    assert stock(product) == 1
    row = DeadLetter.objects.get()
    assert (row.status, row.replay_count) == (DeadLetter.Status.RESOLVED, 1)
    assert row.resolved_at is not None


def test_a_replay_reaches_only_the_group_that_failed_it(dead_letter, product, handler, consumer, transport):
    handler.succeed(product)
    orders_length = transport.stream_length("orders")

    deadletters("replay", str(dead_letter.pk))
    notifications = consumer("notifications", name="n1").run(once=True)
    consumer("inventory", name="i1").run(once=True)

    assert (notifications.processed, notifications.duplicates, notifications.skipped) == (0, 0, 0)
    assert handler.seen_by_notifications == [dead_letter.event_id], "seen once, at the original delivery"
    assert transport.stream_length("orders") == orders_length
    assert transport.stream_length("eventbus:replay:notifications") == 0
    assert stock(product) == 1


def test_replaying_an_event_whose_effect_was_applied_meanwhile_changes_nothing_and_resolves_it(
    dead_letter, product, handler, consumer, transport
):
    handler.succeed(product)
    # The relay published the event twice; the second copy went through after the first died.
    transport.publish([("orders", dead_letter.fields)])
    consumer("inventory", name="i1").run(once=True)
    assert stock(product) == 1

    deadletters("replay", str(dead_letter.pk))
    stats = consumer("inventory", name="i1").run(once=True)

    assert (stats.processed, stats.duplicates) == (0, 1)
    assert stock(product) == 1
    assert handler.calls(product) == 2, "the replay did not reach the handler"
    assert DeadLetter.objects.get().status == DeadLetter.Status.RESOLVED


def test_a_replay_that_fails_again_goes_back_to_dead_on_the_same_row(dead_letter, consumer, transport):
    deadletters("replay", str(dead_letter.pk))

    stats = consumer("inventory", name="i1").run(once=True)

    assert stats.dead == 1
    row = DeadLetter.objects.get()  # still the only one
    assert row.pk == dead_letter.pk
    assert (row.status, row.replay_count, row.attempts) == (DeadLetter.Status.DEAD, 1, 2)
    assert row.first_failed_at == dead_letter.first_failed_at
    assert row.last_failed_at > dead_letter.last_failed_at
    assert pending(transport, stream="eventbus:replay:inventory") == {}
    assert transport.stream_length("eventbus:dead:inventory") == 2
