"""Publishing on commit (the default): the process that commits events puts them on their
stream itself, at once; the relay only picks up what it could not publish."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from django.db import transaction

from eventbus.messages.codec import decode
from eventbus.models import OutboxEvent
from eventbus.redis.transport import reset_transport
from eventbus.runtime.relay import Relay
from eventbus.store import outbox
from orders.events import OrderConfirmed

pytestmark = pytest.mark.django_db(transaction=True)


def confirmed() -> OrderConfirmed:
    return OrderConfirmed(order_id=uuid.uuid4(), customer_id=1, total=Decimal("5.00"))


def on_stream(transport, stream: str = "orders") -> list[uuid.UUID]:
    return [decode(f[b"event"]).event_id for _, f in transport.client.xrange(transport.key(stream))]


def test_committed_events_are_on_their_stream_right_after_commit(transport):
    with transaction.atomic():
        first = outbox.record(confirmed(), aggregate_id="a")
        second = outbox.record(confirmed(), aggregate_id="b")

    assert on_stream(transport) == [first.event_id, second.event_id]


def test_the_relay_deletes_the_rows_of_events_published_on_commit_and_publishes_them_no_more(transport, settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 0}  # deleted, not kept
    with transaction.atomic():
        outbox.record(confirmed(), aggregate_id="a")
        outbox.record(confirmed(), aggregate_id="b")

    assert Relay(transport=transport, grace_s=0).run(once=True) == 0, "nothing is left for the relay to publish"
    assert not OutboxEvent.objects.exists()
    assert len(on_stream(transport)) == 2


def test_events_recorded_in_a_savepoint_that_rolled_back_are_never_published(transport):
    def undone() -> None:
        with transaction.atomic():
            outbox.record(confirmed(), aggregate_id="undone")
            1 / 0  # noqa: B018 - roll the savepoint back

    with transaction.atomic():
        kept = outbox.record(confirmed(), aggregate_id="kept")
        with pytest.raises(ZeroDivisionError):
            undone()
        also_kept = outbox.record(confirmed(), aggregate_id="also")

    assert on_stream(transport) == [kept.event_id, also_kept.event_id]


def test_events_of_a_rolled_back_transaction_are_never_published(transport):
    def undone() -> None:
        with transaction.atomic():
            outbox.record(confirmed(), aggregate_id="undone")
            1 / 0  # noqa: B018

    with pytest.raises(ZeroDivisionError):
        undone()

    assert on_stream(transport) == []
    assert not OutboxEvent.objects.exists()


def test_when_redis_is_unreachable_at_commit_the_rows_wait_for_the_relay(transport, settings):
    reachable = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    reset_transport()
    with transaction.atomic():
        envelope = outbox.record(confirmed(), aggregate_id="a")
    settings.REDIS_URL = reachable
    reset_transport()

    assert OutboxEvent.objects.filter(event_id=envelope.event_id).exists(), "the event is not lost"
    assert Relay(transport=transport, grace_s=60).run(once=True) == 0, "younger than the grace: not yet"
    time.sleep(0.2)
    assert Relay(transport=transport, grace_s=0.1).run(once=True) == 1
    assert on_stream(transport) == [envelope.event_id]


def test_with_a_retention_published_rows_are_kept_and_marked(transport, settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 3600}
    with transaction.atomic():
        envelope = outbox.record(confirmed(), aggregate_id="a")
    Relay(transport=transport).run(once=True)

    row = OutboxEvent.objects.get(event_id=envelope.event_id)
    assert row.published_at is not None
    assert on_stream(transport) == [envelope.event_id]
