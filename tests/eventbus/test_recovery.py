"""When Redis forgets: the relay notices that Redis lost data (emptied, a stream's last id went
back, a group vanished) and publishes again what may have been lost; the reconciler publishes
again a kept event a group that handles it never got. The inbox makes every repeat harmless."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from eventbus.messages.codec import decode
from eventbus.models import BusMemory, DeadLetter, OutboxEvent, ProcessedEvent
from eventbus.runtime.relay import Relay
from eventbus.store import outbox, recovery
from inventory.models import Product
from notifications.models import Notification
from orders.events import OrderConfirmed
from orders.models import Order
from orders.services import order_place
from tests.factories import ProductFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def kept_rows(settings):
    """Rows kept an hour; the relay publishes rows marked unpublished at once (in production
    they are older than its grace period for rows their committing process publishes)."""
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 3600, "RECONCILE_AFTER_S": 120, "RELAY_GRACE_S": 0}


def confirmed(customer_id: int = 1) -> OrderConfirmed:
    return OrderConfirmed(order_id=uuid.uuid4(), customer_id=customer_id, total=Decimal("10.00"))


def publish(transport, *events: OrderConfirmed) -> list[uuid.UUID]:
    """Record the events in one transaction and let a relay pass publish them (rows kept)."""
    with transaction.atomic():
        envelopes = [outbox.record(e, aggregate_id=e.order_id) for e in events]
    Relay(transport=transport).run(once=True)
    return [e.event_id for e in envelopes]


def on_stream(transport, stream: str) -> list[uuid.UUID]:
    return [decode(f[b"event"]).event_id for _, f in transport.client.xrange(transport.key(stream))]


def forget_everything(transport) -> None:
    """What a Redis restarted without persistence holds of this test's namespace: nothing."""
    keys = list(transport.client.scan_iter(match=f"{transport.prefix}*", count=1000))
    transport.client.delete(*keys)


def test_the_first_check_remembers_redis_and_reports_no_loss(transport):
    Relay(transport=transport).ensure_groups()
    assert recovery.check_memory(transport) is None

    memory = BusMemory.objects.get(key_prefix=transport.prefix)
    assert transport.incarnation("another") == memory.token
    assert "inventory@orders" in memory.seen["groups"]
    assert recovery.check_memory(transport) is None, "nothing changed"


def test_an_emptied_redis_gets_every_event_not_yet_handled_published_again(transport, pump, customer, caplog):
    product = ProductFactory(stock=10)
    first = order_place(customer=customer, items=[(product.pk, 1)])
    pump()  # handled by every group: nothing of it needs Redis any more
    age(list(OutboxEvent.objects.values_list("event_id", flat=True)), 60)  # beyond the clocks' margin
    recovery.check_memory(transport)
    assert Order.objects.get(pk=first.pk).status == Order.Status.CONFIRMED
    second = order_place(customer=customer, items=[(product.pk, 1)])
    Relay(transport=transport).run(once=True)  # on the stream, not handled yet
    in_flight = set(OutboxEvent.objects.filter(aggregate_id=str(second.pk)).values_list("event_id", flat=True))
    forget_everything(transport)

    with caplog.at_level(logging.WARNING, logger="eventbus.store.recovery"):
        loss = recovery.check_memory(transport)

    assert loss is not None
    assert loss.reason == "emptied"
    unpublished = set(OutboxEvent.objects.filter(published_at__isnull=True).values_list("event_id", flat=True))
    assert in_flight <= unpublished, "the event still on its way is published again"
    first_events = set(OutboxEvent.objects.filter(aggregate_id=str(first.pk)).values_list("event_id", flat=True))
    assert not (first_events & unpublished), "what every group had handled before the loss is left alone"
    assert "Redis lost data (emptied" in caplog.text
    pump()
    assert Order.objects.get(pk=second.pk).status == Order.Status.CONFIRMED
    assert Product.objects.get(pk=product.pk).stock == 8, "each order reserved once"


def test_a_stream_whose_last_id_went_back_is_a_loss_since_that_id(transport):
    publish(transport, confirmed())
    recovery.check_memory(transport)
    kept = publish(transport, confirmed(), confirmed())
    # A replica that missed the newest entries took over: the stream ends earlier than it did.
    key = transport.key("orders")
    first_id = transport.client.xrange(key, count=1)[0][0]
    entries = transport.client.xrange(key)
    transport.client.delete(key)
    transport.client.xadd(key, entries[0][1], id=first_id)

    loss = recovery.check_memory(transport)

    assert loss is not None
    assert loss.reason == "went_back"
    assert "stream orders" in loss.detail
    assert set(kept) <= set(OutboxEvent.objects.filter(published_at__isnull=True).values_list("event_id", flat=True))


def test_a_consumer_group_that_vanished_is_a_loss(transport):
    publish(transport, confirmed())
    recovery.check_memory(transport)
    transport.client.xgroup_destroy(transport.key("orders"), "notifications")

    loss = recovery.check_memory(transport)

    assert loss is not None
    assert loss.reason == "group_gone"
    assert "notifications@orders" in loss.detail


def test_the_relay_republishes_after_redis_forgot_and_the_inbox_drops_what_had_arrived(transport, pump, customer):
    product = ProductFactory(stock=10)
    order = order_place(customer=customer, items=[(product.pk, 2)])
    relay = Relay(transport=transport)
    relay.run(once=True)
    forget_everything(transport)

    relay.maintain()  # what its housekeeping tick does
    relay.run(once=True)

    assert on_stream(transport, "orders"), "the lost events are on the stream again"
    pump()
    assert Order.objects.get(pk=order.pk).status == Order.Status.CONFIRMED
    assert Product.objects.get(pk=product.pk).stock == 8


def age(event_ids: list[uuid.UUID], seconds: float) -> None:
    OutboxEvent.objects.filter(event_id__in=event_ids).update(
        published_at=timezone.now() - dt.timedelta(seconds=seconds)
    )


def handled_for_long(transport) -> None:
    """As in a system that has run for a while: every group has handled its types for an hour
    (the reconciler judges a group only on events published after it began handling their type)."""
    memory = BusMemory.objects.get(key_prefix=transport.prefix)
    hour_ago = (timezone.now() - dt.timedelta(hours=1)).isoformat()
    memory.seen["handled"] = {g: dict.fromkeys(types, hour_ago) for g, types in memory.seen["handled"].items()}
    memory.save()


def handled(group: str, event_id: uuid.UUID) -> None:
    ProcessedEvent.objects.create(consumer_group=group, event_id=event_id, processed_at=timezone.now())


def test_the_reconciler_republishes_only_old_events_a_handling_group_never_got(transport, consume, customer):
    lost, delivered, dead, _young = publish(transport, *(confirmed(customer.pk) for _ in range(4)))
    consume("notifications")  # the notifications group handles OrderConfirmed, and is caught up
    ProcessedEvent.objects.filter(event_id=lost).delete()  # as if its entry had never reached it
    DeadLetter.objects.create(
        consumer_group="notifications", stream="orders", message_id="1-1", event_id=dead, event_type="x",
        fields={}, error="boom", attempts=5, first_failed_at=timezone.now(), last_failed_at=timezone.now(),
    )  # fmt: skip
    ProcessedEvent.objects.filter(event_id=dead).delete()
    age([lost, delivered, dead], 300)
    handled_for_long(transport)

    found = recovery.Reconciler(after_s=120, retention_s=3600).run(transport)

    assert found == {"notifications": 1}
    # delivered: in the inbox; dead: the operator's (dead letters); young: not judged yet
    assert list(OutboxEvent.objects.filter(published_at__isnull=True).values_list("event_id", flat=True)) == [lost]


def test_the_reconciler_does_not_judge_what_a_group_has_not_reached_on_its_stream(transport):
    (waiting,) = publish(transport, confirmed())  # on the stream, no consumer has read it yet
    age([waiting], 300)
    handled_for_long(transport)

    found = recovery.Reconciler(after_s=120, retention_s=3600).run(transport)

    assert not found
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_the_reconciler_checks_each_event_once_per_publication(transport, consume, customer):
    (event_id,) = publish(transport, confirmed(customer.pk))
    consume("notifications")
    ProcessedEvent.objects.filter(event_id=event_id).delete()  # as if it had never arrived
    Notification.objects.filter(event_id=event_id).delete()
    age([event_id], 300)
    handled_for_long(transport)
    reconciler = recovery.Reconciler(after_s=120, retention_s=3600)

    assert reconciler.run(transport) == {"notifications": 1}
    assert not reconciler.run(transport), "marked for the relay: not found twice"
    Relay(transport=transport).run(once=True)
    consume("notifications")

    assert ProcessedEvent.objects.filter(consumer_group="notifications", event_id=event_id).exists()
    assert on_stream(transport, "orders") == [event_id, event_id]


def test_the_reconciler_leaves_alone_events_of_a_type_a_group_did_not_handle_yet(transport, consume, customer):
    """A deploy that makes a group handle a type it skipped before: the events it skipped left
    no inbox row and are not lost; they must not be sent to it an hour late."""
    (skipped,) = publish(transport, confirmed(customer.pk))
    consume("notifications")
    ProcessedEvent.objects.filter(event_id=skipped).delete()  # as if the group had skipped the type
    Notification.objects.filter(event_id=skipped).delete()
    age([skipped], 300)
    memory = BusMemory.objects.get(key_prefix=transport.prefix)
    assert OrderConfirmed.type in memory.seen["handled"]["notifications"], "recorded when first seen"

    assert not recovery.Reconciler(after_s=120, retention_s=3600).run(transport)
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
