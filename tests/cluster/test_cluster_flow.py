"""The whole system on a real Redis Cluster (3 masters, 3 replicas, tests.rediscluster):
REDIS_URL `redis+cluster://...`, 8 partitions spread over the masters, the relay, one consumer
per group and the web's order desk as real processes. Orders placed through the database and
through the web (HTTP 201) all settle, each effect once, `check_invariants` passes; a
master killed while its replica is paused and cut off (so it holds writes no replica has) is
replaced by that replica, and with WAIT nothing it alone held was counted as published."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from eventbus.messages import registry
from eventbus.models import OutboxEvent
from eventbus.redis.slots import slot
from eventbus.redis.transport import get_transport, reset_transport
from eventbus.runtime import partitions
from orders.models import Order
from tests.cluster.conftest import LocalCluster
from tests.factories import ProductFactory, UserFactory
from tests.faults.test_crashes import FLOW, settle_flow, start_flow, wait_settled
from tests.intake.test_intake_web import post
from tests.processes import Processes, stop_between_transactions, wait_until
from tests.rediscluster import cluster_settings

pytestmark = [pytest.mark.cluster, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def on_cluster(clean_cluster: LocalCluster, settings, key_prefix: str, processes: Processes) -> Iterator[LocalCluster]:
    """This process and the processes a test starts on the cluster, with 8 partitions."""
    for name, value in cluster_settings(settings, clean_cluster.url, key_prefix).items():
        setattr(settings, name, value)  # the settings fixture puts them back
    settings.EVENTBUS = {**settings.EVENTBUS, "PARTITIONS": 8}
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0
    processes.env_overrides.update(EVENTBUS_PARTITIONS="8", MAX_PENDING_ORDERS_PER_CUSTOMER="0")
    reset_transport()
    yield clean_cluster
    get_transport().close()
    reset_transport()


def masters_holding(cluster: LocalCluster, prefix: str) -> set[int]:
    """The masters that hold a partition stream of `orders`."""
    return {port for port in cluster.masters() if redis.Redis(port=port).keys(f"{prefix}orders:{{p*}}")}


def test_orders_placed_through_the_database_and_the_intake_settle_once_on_a_cluster(
    on_cluster: LocalCluster, processes: Processes, key_prefix: str
):
    web = processes.start_web()
    placer = start_flow(processes, seed=11)  # the relay, one consumer per group, FLOW orders
    settle_flow(processes, placer, "placing on a cluster")  # FLOW orders, effects once, invariants
    product = ProductFactory(stock=100, price="4.50")
    tokens = [Token.objects.create(user=UserFactory()).key for _ in range(5)]
    taken = []
    for i in range(20):  # the rate limits' keys in one slot
        status, _, body = post(web, tokens[i % 5], [(product.pk, 1)])
        assert status == 201, body
        taken.append(body["id"])
    wait_until(lambda: Order.objects.filter(pk__in=taken).exclude(status=Order.Status.PENDING).count() == 20,
               timeout=60, what="the orders placed through the web to settle")  # fmt: skip
    wait_settled(FLOW + 20, timeout=60, what="their notifications")
    call_command("check_invariants")
    product.refresh_from_db()
    assert product.stock == 80
    assert len(masters_holding(on_cluster, key_prefix)) == 3  # the partitions spread over every master
    assert "REDIS_URL is unreachable" not in processes.log("relay")


@pytest.mark.parametrize("wait_replicas", [1, 0], ids=["with-WAIT-alone", "without-WAIT-with-recovery"])
def test_a_master_that_fails_over_to_a_replica_that_missed_writes_loses_no_order(
    on_cluster: LocalCluster, processes: Processes, settings, key_prefix: str, wait_replicas: int
):
    """With WAIT nothing is kept to publish again and no reconciler runs (OUTBOX_RETENTION_S=0):
    WAIT alone must keep every event (without it, this variant leaves orders pending). Without
    WAIT the relay notices the streams that went back and publishes the kept rows again."""
    if wait_replicas:
        settings.EVENTBUS = {**settings.EVENTBUS, "WAIT_REPLICAS": 1, "WAIT_TIMEOUT_MS": 200, "OUTBOX_RETENTION_S": 0}
        processes.env_overrides.update(PUBLISH_WAIT_REPLICAS="1", PUBLISH_WAIT_TIMEOUT_MS="200", OUTBOX_RETENTION_S="0")
    reset_transport()
    placer = start_flow(processes, seed=13, heal_quickly=not wait_replicas)
    # The master of partition 3 of `orders`: its replica is paused and its link cut, so the
    # master holds writes no replica has; then the master dies and the replica takes over.
    master = on_cluster.master_of_key(key_prefix + partitions.stream_name("orders", 3, 8))
    replica = on_cluster.replica_of(master)
    consumers = [p for name, p in processes.procs.items() if name not in ("relay", "web")]
    stop_between_transactions(consumers)  # nobody handles what the master alone holds before it dies
    on_master, stream = redis.Redis(port=master), key_prefix + partitions.stream_name("orders", 3, 8)
    on_cluster.pause(replica)
    on_master.execute_command("CLIENT", "KILL", "TYPE", "replica")
    cut_at = on_master.xinfo_stream(stream)["last-generated-id"]
    threading.Event().wait(1.0)
    # A busy machine (or a flow already placed) may put nothing on this partition in that second:
    # the variant without WAIT then has nothing to recover, and only "no order lost" is shown.
    held_alone = on_master.xinfo_stream(stream)["last-generated-id"] != cut_at
    unconfirmed = OutboxEvent.objects.filter(published_at__isnull=True).count()
    on_cluster.kill(master)
    on_cluster.resume(replica)
    started = time.monotonic()
    on_cluster.wait_for_master(replica, timeout=60)
    promoted_s = time.monotonic() - started
    for consumer in consumers:
        consumer.send_signal(signal.SIGCONT)
    # The dead master's host comes back as the new master's replica (what a managed cluster
    # does): with WAIT, nothing on that master is published until a replica confirms it.
    on_cluster.restart(master)
    on_cluster.wait_ok(timeout=60)

    wait_settled(FLOW, timeout=120, what="every order to settle after the failover")
    recovered_s = time.monotonic() - started
    settle_flow(processes, placer, "the failover")  # effects once, check_invariants
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), timeout=60,
               what="the outbox to be published")  # fmt: skip
    relay_log = processes.log("relay")
    if not wait_replicas and held_alone:  # the relay had counted as published what the new master never got
        assert "Redis lost data" in relay_log or "never reached a group" in relay_log
    print(
        f"cluster failover {'with WAIT alone' if wait_replicas else 'without WAIT'}: {FLOW} orders; replica "
        f"promoted {promoted_s:.1f} s after the master died, every order settled {recovered_s:.1f} s after; "
        f"{unconfirmed} outbox rows unpublished when it died"
    )


def test_flushing_the_cluster_while_orders_flow_heals_without_an_operator(
    on_cluster: LocalCluster, processes: Processes
):
    placer = start_flow(processes, seed=19, heal_quickly=True)
    on_cluster.flushall()  # every master forgets everything (its replicas follow)

    settle_flow(processes, placer, "the cluster was flushed")
    assert "Redis lost data" in processes.log("relay")


def test_a_partition_slot_moving_to_another_master_while_orders_flow_loses_nothing(
    on_cluster: LocalCluster, processes: Processes, key_prefix: str
):
    """Producers meet ASK then MOVED, consumers' wake-up channels move with the slot: all of
    them follow on their own."""
    placer = start_flow(processes, seed=23)
    key = key_prefix + partitions.stream_name("orders", 3, 8)
    source = on_cluster.master_of_key(key)
    target = next(port for port in on_cluster.masters() if port != source)
    on_cluster.move_slot(slot(key), target, pause_s=0.5)

    settle_flow(processes, placer, "a slot moved")
    assert on_cluster.master_of_key(key) == target


def test_a_consumer_killed_on_a_cluster_hands_its_partitions_to_the_other(
    on_cluster: LocalCluster, processes: Processes
):
    processes.env_overrides.update(EVENTBUS_LEASE_TTL_MS="3000", CLAIM_MIN_IDLE_MS="600000")
    placer = start_flow(processes, seed=29)  # one consumer per group...
    for group in registry.groups():  # ...and a second, which gets its share of the partitions
        processes.start_consumer(group, f"{group}-2")
    threading.Event().wait(2.0)
    for group in registry.groups():
        processes.kill(f"{group}-1")  # SIGKILL: its leases expire, its pending entries move

    settle_flow(processes, placer, "a consumer per group was killed")
