"""The outbox relay: committed outbox rows reach their stream in id order, exactly once."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from eventbus.messages.codec import decode
from eventbus.messages.events import Envelope, Event
from eventbus.models import OutboxEvent
from eventbus.runtime.relay import Relay
from eventbus.store import outbox
from inventory.events import InventoryReserved, ReservedLine
from orders.events import OrderConfirmed, OrderRejected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_only")]

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite serialises all writers; the race needs real row locking"
)


def confirmed(customer_id: int = 1) -> OrderConfirmed:
    return OrderConfirmed(order_id=uuid.uuid4(), customer_id=customer_id, total=Decimal("10.00"))


def record(*events: Event) -> list[Envelope]:
    """Record the events in one committed transaction, as a service would."""
    with transaction.atomic():
        return [outbox.record(e, aggregate_id=e.order_id) for e in events]  # type: ignore[attr-defined]


def event_ids_on(transport, stream: str) -> list[uuid.UUID]:
    return [decode(fields[b"event"]).event_id for _, fields in transport.client.xrange(transport.key(stream))]


def test_relay_publishes_rows_to_their_own_stream_in_outbox_id_order(transport, relay):
    record(confirmed())
    record(InventoryReserved(order_id=uuid.uuid4(), lines=(ReservedLine(product_id=1, quantity=1),)))
    record(OrderRejected(order_id=uuid.uuid4(), customer_id=1, reason="out of stock"), confirmed())
    rows = list(OutboxEvent.objects.order_by("id"))
    by_event = {r.event_id: r for r in rows}

    assert relay() == 4

    assert event_ids_on(transport, "orders") == [r.event_id for r in rows if r.stream == "orders"]
    assert event_ids_on(transport, "inventory") == [r.event_id for r in rows if r.stream == "inventory"]
    for entry_id, fields in transport.client.xrange(transport.key("orders")):
        row = by_event[decode(fields[b"event"]).event_id]
        assert fields == {b"type": row.event_type.encode(), b"event": row.body.encode()}, entry_id


def test_relay_deletes_published_rows_when_no_retention_is_set(relay, settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 0}
    record(confirmed(), confirmed())

    relay()

    assert not OutboxEvent.objects.exists()


def test_relay_keeps_published_rows_marked_when_a_retention_is_set(relay, settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 60}
    record(confirmed(), confirmed())

    relay()

    assert OutboxEvent.objects.count() == 2
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_relay_marks_every_published_row_as_published(relay):
    record(confirmed(), confirmed())

    relay()

    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_second_relay_run_publishes_nothing_again(transport, relay):
    record(confirmed(), confirmed())
    relay()

    assert relay() == 0
    assert transport.client.xlen(transport.key("orders")) == 2


def test_row_committed_after_a_run_is_published_by_the_next_run_and_only_it(transport, relay):
    (first,) = record(confirmed())
    relay()
    (second,) = record(confirmed())

    assert relay() == 1
    assert event_ids_on(transport, "orders") == [first.event_id, second.event_id]


class Abort(Exception):
    pass


def record_then_roll_back() -> None:
    with transaction.atomic():
        record(confirmed())
        raise Abort


def test_rolled_back_event_is_never_published(transport, relay):
    with pytest.raises(Abort):
        record_then_roll_back()

    assert relay() == 0
    assert transport.client.xlen(transport.key("orders")) == 0


class SlowTransaction:
    """An event recorded in a transaction, on another connection, that commits only on
    release(): its outbox id is lower than those of rows recorded meanwhile."""

    def __init__(self) -> None:
        self.recorded, self._release = threading.Event(), threading.Event()
        self.envelopes: list[Envelope] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.recorded.wait(10)

    def _run(self) -> None:
        try:
            with transaction.atomic():
                self.envelopes.extend(record(confirmed()))
                self.recorded.set()
                self._release.wait(10)
        finally:
            connections.close_all()

    def release(self) -> None:
        self._release.set()
        self._thread.join(10)


@postgresql_only
def test_row_with_a_lower_id_committed_late_is_still_published(transport, settings):
    """A relay that remembered `id > last_seen` would skip the slow transaction's row forever."""
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 60}  # keep rows to compare ids
    relay = Relay(transport=transport)  # one long-lived relay, as in production
    slow_transaction = SlowTransaction()
    try:
        (fast,) = record(confirmed())
        relay.run(once=True)
        assert event_ids_on(transport, "orders") == [fast.event_id]
    finally:
        slow_transaction.release()
    slow = slow_transaction.envelopes

    relay.run(once=True)
    assert OutboxEvent.objects.get(event_id=slow[0].event_id).id < OutboxEvent.objects.get(event_id=fast.event_id).id
    assert event_ids_on(transport, "orders") == [fast.event_id, slow[0].event_id]


@postgresql_only
def test_relays_running_at_once_publish_every_row_exactly_once(transport):
    envelopes = record(*(confirmed() for _ in range(120)))
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def run_relay() -> None:
        try:
            start.wait(10)
            Relay(batch_size=5, transport=transport).run(once=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run_relay, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a relay hung"
    Relay(transport=transport).run(once=True)  # whatever a relay that gave up early left behind

    assert errors == []
    published = event_ids_on(transport, "orders")
    assert sorted(published) == sorted(e.event_id for e in envelopes), "every row once, none twice"


def test_republish_since_makes_the_relay_publish_kept_rows_again(transport, settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 3600}
    before = timezone.now()
    (envelope,) = record(confirmed())
    Relay(transport=transport).run(once=True)

    call_command("relay_outbox", "--republish-since", before.isoformat())
    Relay(transport=transport).run(once=True)

    assert event_ids_on(transport, "orders") == [envelope.event_id, envelope.event_id]


def test_republish_since_without_a_time_zone_is_a_clear_error():
    with pytest.raises(CommandError, match="ISO 8601 time with a zone"):
        call_command("relay_outbox", "--republish-since", "yesterday")


@postgresql_only
def test_row_with_a_lower_id_committed_late_during_a_backlog_drain_is_published_in_the_same_pass(transport):
    """While it works through full batches the relay starts past the last one; a row that
    commits late with a lower id must still go out before the pass ends."""
    relay = Relay(transport=transport, batch_size=2)
    slow_transaction = SlowTransaction()
    fast = [e for _ in range(4) for e in record(confirmed())]
    assert relay.publish_batch() == 2
    assert relay.publish_batch() == 2, "full batches: the relay now starts past them"
    slow_transaction.release()
    slow = slow_transaction.envelopes

    relay.run(once=True)

    assert event_ids_on(transport, "orders") == [e.event_id for e in fast] + [slow[0].event_id]
