"""Eight partitions, three consumer processes per group running at once: every group applies
each order's events in publish order (a cancellation no longer overtakes its placement), and a
consumer killed mid-flow loses its partitions at the lease's expiry to one that takes over its
pending entries at once."""

from __future__ import annotations

import random
import threading

import pytest
from django.core.management import call_command
from django.db import connections

from eventbus.messages import registry
from eventbus.models import OutboxEvent
from notifications.models import Notification
from orders.events import OrderCancelled, OrderConfirmed, OrderRejected
from orders.models import Order
from orders.services import order_cancel, order_place
from tests.eventbus.test_partitions import assert_handled_in_publish_order
from tests.factories import ProductFactory, UserFactory
from tests.processes import Processes, wait_until

OUTCOMES = (OrderConfirmed, OrderRejected, OrderCancelled)

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def partitioned(settings, processes: Processes) -> Processes:
    return start_partitioned(settings, processes)


def start_partitioned(settings, processes: Processes) -> Processes:
    settings.EVENTBUS = {**settings.EVENTBUS, "PARTITIONS": 8}
    processes.env_overrides.update(
        EVENTBUS_PARTITIONS="8", EVENTBUS_LEASE_TTL_MS="2000", CONSUMER_BATCH_SIZE="1",
        CLAIM_MIN_IDLE_MS="600000",  # nobody waits for the idle reclaim: the lease's successor takes over
    )  # fmt: skip
    processes.start_relay()
    for group in registry.groups():
        for n in range(3):
            processes.start_consumer(group, f"{group}-{n}")
    processes.start_mailer()
    return processes


def place_and_cancel(count: int, *, seed: int) -> tuple[list, threading.Thread]:
    """Place `count` orders from a thread, cancelling every other one at once."""
    rng = random.Random(seed)
    customers = UserFactory.create_batch(5)
    products = [ProductFactory(stock=1000) for _ in range(6)]
    placed: list = []

    def run() -> None:
        try:
            for i in range(count):
                customer = rng.choice(customers)
                order = order_place(customer=customer, items=[(rng.choice(products).pk, 1)])
                placed.append(order)
                if i % 2:
                    order_cancel(order_id=order.pk, customer=customer)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="placer")
    thread.start()
    return placed, thread


def settled(count: int) -> bool:
    """Every order final, and one notification per outcome published (confirmed, rejected,
    cancelled: the outbox keeps published rows, OUTBOX_RETENTION_S)."""
    outcomes = OutboxEvent.objects.filter(event_type__in=[c.type for c in OUTCOMES]).count()
    return (
        Order.objects.count() == count
        and not Order.objects.filter(status=Order.Status.PENDING).exists()
        and Notification.objects.count() == outcomes
        and not Notification.objects.filter(status=Notification.Status.PENDING).exists()
    )


@pytest.mark.parametrize("publish_on_commit", [True, False], ids=["publish-on-commit", "relay-only"])
def test_three_consumers_per_group_apply_each_orders_events_in_publish_order(
    settings, processes: Processes, publish_on_commit: bool
):
    """Published on commit by the process that committed (the default), each order's events are
    applied in the order they reached its partition; published by the relay alone, that is also
    the order their transactions committed (docs/scaling.md, "Partitions and per-order order")."""
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": publish_on_commit}
    processes.env_overrides["PUBLISH_ON_COMMIT"] = str(publish_on_commit).lower()
    start_partitioned(settings, processes)
    placed, placer = place_and_cancel(120, seed=1)
    placer.join(timeout=120)

    wait_until(lambda: settled(120), timeout=120, what="every order to settle")
    assert_handled_in_publish_order(placed, commit_order=not publish_on_commit)
    call_command("check_invariants")


def test_a_consumer_killed_mid_flow_loses_its_partitions_to_one_that_takes_over_its_pending(
    settings, partitioned: Processes
):
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0
    _placed, placer = place_and_cancel(120, seed=2)
    wait_until(lambda: Notification.objects.count() >= 20, timeout=60, what="orders to flow")
    for group in registry.groups():
        partitioned.kill(f"{group}-0")
    placer.join(timeout=120)

    # CLAIM_MIN_IDLE_MS is ten minutes: only the takeover at the lease's expiry can settle them.
    wait_until(lambda: settled(120), timeout=90, what="every order to settle after the kills")
    call_command("check_invariants")
    assert max(e for e in partitioned.emails_by_event().values()) == 1, "no e-mail twice"
