"""Partitioned streams (EVENTBUS_PARTITIONS): every event of one aggregate on one partition in
publish order; within a group each partition read by one consumer at a time through a lease,
the partitions shared fairly, given back on stop, lost at expiry, taken over at once."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest
from django.db import transaction

from eventbus.messages import registry
from eventbus.models import ConsumerBatch, OutboxEvent, ProcessedEvent
from eventbus.redis.client import id_key
from eventbus.runtime import partitions
from eventbus.runtime.consumer import Consumer
from eventbus.runtime.leases import Leases
from eventbus.runtime.relay import Relay
from eventbus.store import outbox
from inventory.models import Product
from orders.events import OrderConfirmed
from orders.models import Order
from orders.services import order_cancel, order_place
from tests.factories import ProductFactory

pytestmark = [pytest.mark.django_db(transaction=True)]

ORDERS_PARTITIONS = [f"orders:{{p{p}}}" for p in range(8)]


@pytest.fixture
def eight(settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "PARTITIONS": 8, "LEASE_TTL_MS": 1000}


def confirmed(order_id: uuid.UUID) -> OrderConfirmed:
    return OrderConfirmed(order_id=order_id, customer_id=1, total=Decimal("1.00"))


def test_one_partition_keeps_the_stream_names_of_before(settings):
    assert partitions.count() == 1
    assert registry.streams_for("notifications") == ["orders"]
    assert partitions.stream_for("orders", "anything") == "orders"


def test_partition_of_is_stable_and_spreads_aggregates():
    ids = [str(uuid.UUID(int=i)) for i in range(800)]
    counts = [0] * 8
    for i in ids:
        counts[partitions.partition_of(i, 8)] += 1
    assert partitions.partition_of("order-1", 8) == partitions.partition_of("order-1", 8)
    assert partitions.partition_of("0b1e2c3d-0000-4000-8000-000000000000", 8) == 6  # CRC-32: the same in every process
    assert min(counts) > 60, counts


def test_every_event_of_an_order_goes_to_its_partition(eight):
    order_id = uuid.uuid4()
    with transaction.atomic():
        outbox.record(confirmed(order_id), aggregate_id=order_id)
        outbox.record(confirmed(order_id), aggregate_id=order_id)
    streams = set(OutboxEvent.objects.values_list("stream", flat=True))
    assert streams == {partitions.stream_name("orders", partitions.partition_of(str(order_id), 8))}
    assert set(registry.streams_for("notifications")) == set(ORDERS_PARTITIONS)
    assert partitions.logical("orders:{p3}") == ("orders", 3)
    assert partitions.logical("orders") == ("orders", None)


def leases_of(transport, name: str) -> Leases:
    return Leases(transport, "notifications", name, ORDERS_PARTITIONS, ttl_ms=1000)


def test_consumers_share_the_partitions_fairly_and_a_joiner_gets_its_share(eight, transport):
    a = leases_of(transport, "a")
    a.refresh()
    assert a.held == ORDERS_PARTITIONS, "alone, it holds every partition"
    b = leases_of(transport, "b")
    b.refresh()
    assert b.held == [], "nothing free yet"
    a.refresh()  # sees two members: gives back its surplus after its batch
    assert len(a.held) == 4
    b.refresh()
    assert len(b.held) == 4
    assert set(a.held).isdisjoint(b.held)
    owners = transport.lease_owners("notifications", ORDERS_PARTITIONS)
    assert sorted(owners.values()) == ["a"] * 4 + ["b"] * 4


def test_a_consumer_that_stops_gives_its_leases_back_at_once(eight, transport):
    a, b = leases_of(transport, "a"), leases_of(transport, "b")
    a.refresh(), b.refresh(), a.refresh(), b.refresh()
    a.release_all()
    b.refresh()
    assert b.held == ORDERS_PARTITIONS


def test_a_consumer_that_hangs_loses_its_leases_at_expiry_and_cannot_renew_them(eight, transport):
    a, b = leases_of(transport, "a"), leases_of(transport, "b")
    a.refresh()
    time.sleep(1.1)  # a is paused past the lease period (1 s here)
    b.refresh()
    assert b.held == ORDERS_PARTITIONS
    _taken, lost = a.refresh()
    assert lost == ORDERS_PARTITIONS, "it finds out"
    assert a.held == [], "and stops reading there"
    assert set(transport.lease_owners("notifications", ORDERS_PARTITIONS).values()) == {"b"}


def publish_confirmed(count: int, customer, relay) -> list[uuid.UUID]:
    """An OrderConfirmed for each of `count` new orders, committed and published."""
    order_ids = [uuid.uuid4() for _ in range(count)]
    with transaction.atomic():
        for order_id in order_ids:
            outbox.record(
                OrderConfirmed(order_id=order_id, customer_id=customer.pk, total=Decimal("1")), aggregate_id=order_id
            )
    relay()
    return order_ids


def test_a_new_owner_takes_over_the_pending_entries_of_a_partition_at_once(eight, transport, relay, customer):
    order_ids = publish_confirmed(20, customer, relay)
    dead = Consumer("notifications", name="dead", block_ms=0, transport=transport)
    dead.leases.refresh()
    # It read everything and died before acknowledging: all pending in its name, leases held.
    transport.read("notifications", "dead", dict.fromkeys(dead.leases.held, ">"), count=100, block_ms=None)
    time.sleep(1.1)  # its leases expire; nobody waits CLAIM_MIN_IDLE_MS (a minute) for its entries

    heir = Consumer("notifications", name="heir", block_ms=0, transport=transport)
    heir.run(once=True)

    handled = set(ProcessedEvent.objects.filter(consumer_group="notifications").values_list("aggregate_id", flat=True))
    assert handled == {str(o) for o in order_ids}
    assert heir.stats.processed == 20


def test_a_consumer_whose_step_outlasts_its_lease_renews_before_it_reads_again(eight, transport, relay, customer):
    """A chore that waits for the database past the lease (1 s here) while another consumer takes
    the partitions over: the stalled one renews before reading, finds them lost and takes nothing
    from them. Read on the lapsed lease, their entries would wait in its name while the new owner
    applied newer ones of the same orders (the partitioned pipeline's out-of-order failure)."""
    publish_confirmed(16, customer, relay)
    stalled = Consumer("notifications", name="stalled", block_ms=0, transport=transport)
    heir = Consumer("notifications", name="heir", block_ms=0, transport=transport)

    def waits_for_the_database() -> None:
        time.sleep(1.1)
        heir.leases.refresh()  # the stalled one's leases ran out: the heir takes every partition

    stalled._chores.append([0.0, 3600.0, waits_for_the_database])
    for _ in range(3):
        stalled.step(once=True)

    assert stalled.leases.held == []
    pending = [i for s in ORDERS_PARTITIONS for i in transport.pending_ids(s, "notifications", "stalled")]
    assert pending == [], "it read nothing on the lapsed lease"
    heir.run(once=True)
    assert heir.stats.processed == 16


def test_partitions_handed_over_between_batches_keep_each_orders_events_in_publish_order(
    eight, transport, customer, settings
):
    """Three consumers per group taking turns, rebalancing before every turn (the first takes
    every partition, then gives back all but its share). The same with processes running at
    once: tests/faults/test_partitioned_pipeline.py."""
    settings.EVENTBUS = {**settings.EVENTBUS, "LEASE_TTL_MS": 5000}  # no lease expires here
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0
    products = [ProductFactory(stock=1000) for _ in range(4)]
    orders = []
    for i in range(40):
        order = order_place(customer=customer, items=[(products[i % 4].pk, 1)])
        orders.append(order)
        if i % 2:
            order_cancel(order_id=order.pk, customer=customer)
    Relay(transport=transport).run(once=True)
    consumers = [
        Consumer(group, name=f"{group}-{n}", block_ms=0, transport=transport, batch_size=3)
        for group in registry.groups()
        for n in range(3)
    ]
    for _ in range(30):  # round-robin, as three processes per group would interleave
        for c in consumers:
            if c.leases:  # rebalance between batches: the first takes all, then shares
                c.leases.refresh()
            c.run(once=True)
        Relay(transport=transport).run(once=True)

    for group in registry.groups():
        ours = [c for c in consumers if c.group == group]
        held = [s for c in ours for s in (c.leases.held if c.leases else [])]
        assert len(held) == len(set(held)), f"{group}: a partition held twice"
    assert_handled_in_publish_order(orders, commit_order=True)  # one process published them all
    assert Order.objects.filter(status=Order.Status.CANCELLED).count() == 20
    assert Product.objects.filter(stock__lt=0).count() == 0


def assert_handled_in_publish_order(orders: list, *, commit_order: bool = False) -> None:
    """Every group applied each order's events in the order they were published: the order of
    their entries on the order's partition stream. With `commit_order`, that is also the order
    their transactions committed (the outbox ids), which holds where one process publishes
    them, or the relay alone (PUBLISH_ON_COMMIT=false): publishing on commit, two processes that
    commit one order's events back to back can XADD them the other way round (docs/scaling.md)."""
    # The order each group applied them in: batch after batch as they ended (committed), and
    # within a batch in stream order (the inbox rows of one batch are inserted sorted by event
    # id, so their ids say nothing). The inbox is read first: a batch row commits with its inbox
    # rows, so every batch they name is there when the batches are read (consumers still run).
    inbox = {
        group: list(
            ProcessedEvent.objects.filter(consumer_group=group).values_list(
                "aggregate_id", "event_id", "batch_id", "message_id"
            )
        )
        for group in registry.groups()
    }
    ended = {
        b: started + dt.timedelta(milliseconds=ms)
        for b, started, ms in ConsumerBatch.objects.values_list("id", "started_at", "duration_ms")
    }
    committed = list(OutboxEvent.objects.order_by("id").values_list("aggregate_id", "event_id"))
    for group, rows in inbox.items():
        handled = [(a, e) for a, e, b, m in sorted(rows, key=lambda r: (ended[r[2]], id_key(r[3])))]
        published = [(a, e) for a, e, b, m in sorted(rows, key=lambda r: id_key(r[3]))]
        for order in orders:
            want = [e for a, e in published if a == str(order.pk)]
            got = [e for a, e in handled if a == str(order.pk)]
            assert got == want, f"group {group}, order {order.pk}: handled out of publish order"
            if commit_order:
                seen = set(want)
                assert want == [e for a, e in committed if a == str(order.pk) and e in seen], (
                    f"group {group}, order {order.pk}: published out of commit order"
                )


def test_status_and_the_console_say_which_consumer_reads_which_partition(eight, transport):
    from io import StringIO

    from django.core.management import call_command

    from dashboard.console import console_state

    Relay(transport=transport).ensure_groups()
    leases_of(transport, "reader-1").refresh()
    out = StringIO()
    with pytest.raises(SystemExit):  # unhealthy: no consumer process is alive
        call_command("status", stdout=out)

    rows = [line.split() for line in out.getvalue().splitlines() if line.startswith("notifications ")]
    assert {r[1]: r[2] for r in rows if r[1].startswith("orders:")} == dict.fromkeys(ORDERS_PARTITIONS, "reader-1")
    group = next(g for g in console_state()["groups"] if g["group"] == "notifications")
    assert {s["stream"]: s["owner"] for s in group["streams"] if s["partition"]} == dict.fromkeys(
        ORDERS_PARTITIONS, "reader-1"
    )


def test_check_drained_sees_what_is_left_under_any_partition_count(transport, settings, relay, pump, customer):
    from io import StringIO

    from django.core.management import call_command

    order_place(customer=customer, items=[(ProductFactory(stock=5).pk, 1)])  # one stream: "orders"
    relay()
    settings.EVENTBUS = {**settings.EVENTBUS, "PARTITIONS": 8}  # changed before draining: the old stream still counts
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("check_drained", stdout=out)
    assert "orders: group inventory: 1 entries not yet delivered" in out.getvalue()

    settings.EVENTBUS = {**settings.EVENTBUS, "PARTITIONS": 1}
    pump()
    out = StringIO()
    call_command("check_drained", stdout=out)
    assert out.getvalue().strip() == "drained: nothing in flight"


def test_a_row_kept_from_before_a_partition_change_is_republished_where_its_order_goes_now(
    transport, settings, relay, customer
):
    from eventbus.store.recovery import republish_since

    order_id = uuid.uuid4()
    with transaction.atomic():
        outbox.record(confirmed(order_id), aggregate_id=order_id)
    relay()  # published on "orders", the row kept
    settings.EVENTBUS = {**settings.EVENTBUS, "PARTITIONS": 8}
    republish_since(OutboxEvent.objects.get().published_at)

    settings.EVENTBUS = {**settings.EVENTBUS, "RELAY_GRACE_S": 0}
    relay()

    now = partitions.stream_name("orders", partitions.partition_of(str(order_id), 8), 8)
    assert transport.stream_length(now) == 1, "not on the old stream, which nobody reads any more"
