"""Kill the relay and consumers with SIGKILL mid-work, restart Redis under load: every order
still reaches its final status, no stock is reserved twice, no customer gets two e-mails for
the same event, and `check_invariants` passes."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.db import connections

from eventbus.messages import registry
from eventbus.models import OutboxEvent
from eventbus.redis.transport import get_transport
from inventory.models import Reservation
from notifications.models import Notification
from orders.models import Order
from orders.services import order_place
from tests.factories import ProductFactory, UserFactory
from tests.processes import Processes, RedisServer, wait_until
from tests.redisproxy import ReplyHoldingProxy

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


class Placer(threading.Thread):
    """A thread placing orders; join() raises what stopped it early, so a test that waits for
    its orders says why some never came."""

    def __init__(self, place: Callable[[], None], products: list, customers: list) -> None:
        super().__init__(name="placer")
        self._place = place
        self.products = products  # what it places from, for a test that places more alongside
        self.customers = customers
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self._place()
        except Exception as exc:  # noqa: BLE001 - whatever it was, join() reports it
            self.error = exc
        finally:
            connections.close_all()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise AssertionError(f"the placer stopped: {self.error!r}") from self.error


def place_orders(count: int, products: list, customers: list, *, seed: int, pause_s: float = 0.0) -> Placer:
    """Place `count` orders from a background thread (its own database connection)."""
    rng = random.Random(seed)

    def run() -> None:
        for _ in range(count):
            lines = rng.sample(products, rng.randint(1, 3))
            order_place(customer=rng.choice(customers), items=[(p.pk, rng.randint(1, 3)) for p in lines])
            if pause_s:
                threading.Event().wait(pause_s)

    placer = Placer(run, products, customers)
    placer.start()
    return placer


def all_settled(expected: int) -> bool:
    return (
        Order.objects.count() == expected
        and not Order.objects.filter(status=Order.Status.PENDING).exists()
        and Notification.objects.count() == expected
        and not Notification.objects.filter(status=Notification.Status.PENDING).exists()
    )


def settle_state() -> str:
    """Where the pipeline stands: orders and notifications by status, the outbox's unpublished
    rows (what a time-out of all_settled reports)."""

    def by_status(model: type) -> dict[str, int]:
        return dict(Counter(model.objects.values_list("status", flat=True)))

    return (
        f"orders {by_status(Order)}, notifications {by_status(Notification)}, "
        f"unpublished outbox rows {OutboxEvent.objects.filter(published_at__isnull=True).count()}"
    )


def wait_settled(expected: int, *, timeout: float, what: str) -> None:
    wait_until(lambda: all_settled(expected), timeout=timeout, what=what, state=settle_state)


def assert_effects_applied_once(processes: Processes, orders: int) -> None:
    assert not Order.objects.filter(status=Order.Status.PENDING).exists()
    assert Order.objects.count() == orders
    # one notification per order (confirmed or rejected) and never two e-mails for one event
    assert Notification.objects.count() == orders

    def event_ids(*statuses: str) -> set[str]:
        return {str(e) for e in Notification.objects.filter(status__in=statuses).values_list("event_id", flat=True)}

    sent = event_ids("sent")
    emails = processes.emails_by_event()
    recorded = event_ids("sent", "sending")
    assert emails, "no e-mail was sent at all"
    assert max(emails.values()) == 1, f"events e-mailed twice: {[e for e, n in emails.items() if n > 1]}"
    assert sent <= set(emails), "every notification marked sent was e-mailed"
    assert set(emails) <= recorded, "every e-mail belongs to a notification"
    # The mailer is never killed here: every notification is sent, once (a mailer killed between
    # claiming and recording leaves it 'sending' until its claim runs out).
    assert Notification.objects.exclude(status__in=["sent", "sending"]).count() == 0
    call_command("check_invariants")  # raises SystemExit(1) with a report if anything is off


def test_killing_a_consumer_of_each_group_mid_batch_loses_nothing_and_applies_nothing_twice(processes):
    customers = UserFactory.create_batch(25)
    products = [ProductFactory(stock=40) for _ in range(12)]
    processes.start_relay()
    for group in registry.groups():
        processes.start_consumer(group, f"{group}-1", "--batch-size", "20")
    processes.start_mailer()

    orders = 400
    placer = place_orders(orders, products, customers, seed=1, pause_s=0.01)
    # Kill each group's consumer while it is busy and orders are still arriving.
    for group, placed, busy in (
        ("inventory", 80, lambda: Reservation.objects.exists()),
        ("orders", 200, lambda: Order.objects.exclude(status="pending").exists()),
        ("notifications", 320, lambda: Notification.objects.exists()),
    ):
        wait_until(lambda: Order.objects.count() >= placed and busy(), timeout=60, what=f"{group} to get busy")  # noqa: B023
        processes.kill(f"{group}-1")
        assert Order.objects.count() < orders, f"{group} was killed after the work was done; it proves nothing"
        processes.start_consumer(group, f"{group}-2", "--batch-size", "20")
    placer.join(timeout=120)

    wait_settled(orders, timeout=120, what="every order and notification to settle")
    assert_effects_applied_once(processes, orders)


def test_relay_killed_between_publishing_and_marking_rows_publishes_again_and_effects_happen_once(
    private_redis: RedisServer, processes: Processes, transport, settings
):
    # The relay publishes everything here (no publishing on commit), so it is the one to kill.
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": False}
    processes.env_overrides["PUBLISH_ON_COMMIT"] = "false"
    customers = UserFactory.create_batch(5)
    products = [ProductFactory(stock=100) for _ in range(5)]
    place_orders(30, products, customers, seed=2).join()
    for group in registry.groups():
        processes.start_consumer(group, f"{group}-1")
    processes.start_mailer()  # a notification is settled once its e-mail is accepted
    # The first relay talks to Redis through a proxy that keeps back the replies to its XADDs:
    # the entries land on the stream, the relay waits for the answer and never marks the rows.
    proxy = ReplyHoldingProxy(private_redis.port)
    proxy.hold.set()
    processes.env_overrides["REDIS_URL"] = proxy.url
    try:
        processes.start_relay("relay-1")
        wait_until(lambda: transport.stream_length("orders") >= 30, timeout=30, what="the relay's XADDs to land")
        processes.kill("relay-1")
    finally:
        processes.env_overrides.pop("REDIS_URL")
        proxy.close()
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() >= 30, "no row was marked"

    processes.start_relay("relay-2")
    wait_settled(30, timeout=60, what="every order to settle")

    processes.stop_all()  # each consumer logs what it processed and what it dropped as duplicate
    inventory = re.search(
        r"consumer inventory-1 stopped: (\d+) processed, (\d+) duplicates", processes.log("inventory-1")
    )
    assert inventory, processes.log("inventory-1")
    assert int(inventory[1]) == 30, "each placement reserved once"
    assert int(inventory[2]) >= 30, "every placement reached the stream a second time, and was dropped"
    assert Reservation.objects.values("order_id").distinct().count() == Order.objects.filter(status="confirmed").count()
    assert_effects_applied_once(processes, 30)


def test_a_consumer_killed_after_its_commit_before_publishing_its_events_leaves_them_to_the_relay(
    private_redis: RedisServer, processes: Processes, transport
):
    customers = UserFactory.create_batch(5)
    products = [ProductFactory(stock=100) for _ in range(5)]
    processes.env_overrides["RELAY_GRACE_S"] = "1"
    processes.start_relay()
    for group in ("orders", "notifications"):
        processes.start_consumer(group, f"{group}-1")
    processes.start_mailer()
    # inventory-1 reaches Redis through a proxy that swallows its XADDs: it commits its
    # reservations and InventoryReserved events, then waits forever to publish them.
    proxy = ReplyHoldingProxy(private_redis.port, hold_commands=True)
    proxy.hold.set()
    processes.env_overrides["REDIS_URL"] = proxy.url
    try:
        processes.start_consumer("inventory", "inventory-1")
    finally:
        processes.env_overrides.pop("REDIS_URL")
    place_orders(20, products, customers, seed=4).join()
    wait_until(lambda: Reservation.objects.values("order_id").distinct().count() >= 1, timeout=30, what="a commit")
    processes.kill("inventory-1")
    proxy.close()
    assert OutboxEvent.objects.filter(event_type="inventory.InventoryReserved").exists(), "left in the outbox"

    processes.start_consumer("inventory", "inventory-2")
    wait_settled(20, timeout=120, what="every order to settle")
    assert_effects_applied_once(processes, 20)


FLOW = 200  # orders placed while Redis is restarted, flushed or failed over


def start_flow(processes: Processes, *, seed: int, heal_quickly: bool = False) -> Placer:
    """The relay and one consumer per group, then FLOW orders from 10 customers over 8 products
    placed from a thread; returns once 40 have been notified. heal_quickly: the relay checks
    what Redis remembers every second and reconciles what is older than 5 s every 2 s."""
    customers = UserFactory.create_batch(10)
    products = [ProductFactory(stock=60) for _ in range(8)]
    if heal_quickly:
        processes.env_overrides.update(TRIM_INTERVAL_S="1", RECONCILE_AFTER_S="5", RECONCILE_INTERVAL_S="2")
    processes.start_relay()
    for group in registry.groups():
        processes.start_consumer(group, f"{group}-1")
    processes.start_mailer()
    placer = place_orders(FLOW, products, customers, seed=seed, pause_s=0.01)
    wait_until(lambda: Notification.objects.count() >= 40, timeout=60, what="orders to flow")
    return placer


def settle_flow(processes: Processes, placer: Placer, after: str, *, orders: int = FLOW) -> None:
    placer.join(timeout=120)
    wait_settled(orders, timeout=120, what=f"every order to settle after {after}")
    assert_effects_applied_once(processes, orders)


def test_restarting_redis_with_persistence_while_orders_flow_loses_nothing(private_redis: RedisServer, processes):
    placer = start_flow(processes, seed=3)
    private_redis.stop()
    threading.Event().wait(1.0)
    private_redis.start()

    settle_flow(processes, placer, "the restart")
    assert "REDIS_URL is unreachable" in processes.log("relay")
    assert "is reachable again" in processes.log("relay")


@pytest.mark.parametrize("private_redis", [False], indirect=True)
def test_restarting_redis_without_persistence_while_orders_flow_heals_without_an_operator(
    private_redis: RedisServer, processes: Processes
):
    placer = start_flow(processes, seed=5, heal_quickly=True)
    private_redis.kill()  # everything it held is gone: no append-only file, no snapshot
    private_redis.start()

    settle_flow(processes, placer, "Redis came back empty")
    assert "Redis lost data (emptied" in processes.log("relay")


def test_flushing_redis_while_orders_flow_heals_without_an_operator(private_redis: RedisServer, processes: Processes):
    placer = start_flow(processes, seed=6, heal_quickly=True)
    get_transport().client.flushall()

    settle_flow(processes, placer, "Redis was flushed")
    assert "Redis lost data" in processes.log("relay")
