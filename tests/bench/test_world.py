"""bench.world's feeders: what the scenarios place is placed, through the real placing rules."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from bench.world import World, build_world, place_at_desk, place_in_batches
from eventbus.models import OutboxEvent
from inventory.models import Product
from orders.models import Order, OrderItem
from orders.services import catalog_product_apply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _as_the_bench(settings):
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0  # what `manage.py bench` sets: no customer waits on its own orders


def _world() -> World:
    world = build_world(products=3, customers=2)
    for p in Product.objects.filter(pk__in=world.product_ids):  # what the orders consumer would apply
        catalog_product_apply(product_id=p.pk, sku=p.sku, name=p.name, price=p.price, active=True, revision=p.revision)
    return world


def test_place_in_batches_places_every_order_with_its_event_a_transaction_per_batch():
    world = _world()
    seen: list[int] = []

    ids = place_in_batches(world, 25, batch=10, on_placed=seen.append)

    assert len(ids) == len(set(ids)) == 25
    assert seen == [10, 20, 25]
    orders = Order.objects.filter(pk__in=ids)
    assert {o.customer_id for o in orders} <= {c.pk for c in world.customers}
    assert OrderItem.objects.filter(order__in=ids).count() >= 25
    events = OutboxEvent.objects.filter(aggregate_id__in=[str(i) for i in ids])
    assert events.count() == 25
    assert {e.event_type.rsplit(".", 1)[-1] for e in events} == {"OrderPlaced"}
    # One transaction per batch: its orders share the moment it placed them.
    assert sorted(Counter(orders.values_list("created_at", flat=True)).values()) == [5, 10, 10]


def test_place_at_desk_places_every_order_through_the_desk_which_commits_them_together():
    world = _world()
    counted: list[None] = []

    ids = place_at_desk(world, 40, 8, on_placed=lambda: counted.append(None))

    assert len(ids) == len(set(ids)) == len(counted) == 40
    orders = Order.objects.filter(pk__in=ids)
    assert orders.count() == 40
    assert OutboxEvent.objects.filter(aggregate_id__in=[str(i) for i in ids]).count() == 40
    # Eight customers at once: the desk's clerks commit what arrived together in one transaction.
    assert len(set(orders.values_list("created_at", flat=True))) < 40


def test_the_desk_closes_its_threads_connections_when_it_closes():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no server sessions to leave open; pg_stat_activity is PostgreSQL's (CI runs it)")
    world = _world()

    place_at_desk(world, 8, 4)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] == 0  # its clerks' and its look-ups' sessions are gone
