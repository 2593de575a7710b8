"""Failover to a replica that missed writes, while orders flow: the replica is paused
(SIGSTOP) so that the primary holds writes no replica has, the primary is killed, the replica
resumes and is promoted, and clients follow the address to it (a proxy stands for the DNS name
or virtual IP a managed Redis moves). With PUBLISH_WAIT_REPLICAS=1 nothing the primary alone
held was ever marked published; without it, the relay notices that streams went back and
republishes (eventbus.store.recovery). Either way every order settles, no stock is reserved twice,
one e-mail per event, check_invariants passes."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from eventbus.models import OutboxEvent
from eventbus.redis.transport import Transport, get_transport, reset_transport
from tests.faults.test_crashes import FLOW, place_orders, settle_flow, start_flow, wait_settled
from tests.processes import Processes, RedisServer, stop_between_transactions, wait_until
from tests.redisproxy import ReplyHoldingProxy

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


WINDOW_ORDERS = 10  # placed while the primary alone takes writes

Pair = tuple[RedisServer, RedisServer, ReplyHoldingProxy]


@pytest.fixture
def pair(tmp_path: Path, settings: object, key_prefix: str) -> Iterator[Pair]:
    primary = RedisServer(tmp_path / "primary", persist=False)
    replica = RedisServer(tmp_path / "replica", persist=False, replica_of=primary.port)
    for server in (primary, replica):
        server.directory.mkdir()
        server.start()
    proxy = ReplyHoldingProxy(primary.port)
    shared_url = settings.REDIS_URL  # type: ignore[attr-defined]
    settings.REDIS_URL = proxy.url  # type: ignore[attr-defined]
    reset_transport()
    info = get_transport().client.info
    wait_until(lambda: info("replication")["connected_slaves"] == 1, timeout=10, what="the replica to connect")
    yield primary, replica, proxy
    replica.resume()
    settings.REDIS_URL = shared_url  # type: ignore[attr-defined]
    reset_transport()
    proxy.close()
    replica.kill()
    primary.kill()


@pytest.mark.parametrize("wait_replicas", [1, 0], ids=["with-WAIT", "without-WAIT"])
def test_failover_to_a_replica_that_missed_writes_loses_no_order(
    pair: Pair, processes: Processes, settings, tmp_path: Path, wait_replicas: int
):
    primary, replica, proxy = pair
    settings.EVENTBUS = {**settings.EVENTBUS, "WAIT_REPLICAS": wait_replicas, "WAIT_TIMEOUT_MS": 200}
    processes.env_overrides.update(PUBLISH_WAIT_REPLICAS=str(wait_replicas), PUBLISH_WAIT_TIMEOUT_MS="200")
    placer = start_flow(processes, seed=7, heal_quickly=True)

    consumers = [p for name, p in processes.procs.items() if name != "relay"]
    replica.pause()  # from here the primary holds writes no replica has...
    stop_between_transactions(consumers)  # ...and nobody handles them before they are gone with it
    # A stopped process's kernel still receives: cut the replication link too, or what the
    # primary sends meanwhile would be waiting in the replica's socket when it resumes.
    get_transport().client.execute_command("CLIENT", "KILL", "TYPE", "replica")
    cut = timezone.now()
    # Orders placed now reach the primary alone. The flow's placer may have finished already (on
    # a fast machine it places its 200 before the 40th notification): place some here, always.
    place_orders(WINDOW_ORDERS, placer.products, placer.customers, seed=8).join(timeout=60)
    if not wait_replicas:  # the premise: the relay marks published events that only the primary holds
        window = OutboxEvent.objects.filter(created_at__gte=cut)
        wait_until(lambda: window.exists() and not window.filter(published_at__isnull=True).exists(),
                   timeout=30, what="the relay to mark the window's events published")  # fmt: skip
    threading.Event().wait(1.0)
    primary.kill()
    replica.resume()
    promoted = Transport(replica.url)
    promoted.client.execute_command("REPLICAOF", "NO", "ONE")
    promoted.close()
    # The old primary's host comes back as the new primary's replica (what Sentinel or a
    # managed Redis does): with WAIT, nothing is published until some replica confirms it.
    standby = RedisServer(tmp_path / "standby", persist=False, replica_of=replica.port)
    standby.directory.mkdir()
    standby.start()
    proxy.retarget(replica.port)
    started = time.monotonic()
    for consumer in consumers:
        consumer.send_signal(signal.SIGCONT)
    wait_settled(FLOW + WINDOW_ORDERS, timeout=120, what="every order to settle after the failover")
    recovered_s = time.monotonic() - started
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), timeout=60,
               what="the outbox to be published")  # fmt: skip
    settle_flow(processes, placer, "the failover", orders=FLOW + WINDOW_ORDERS)
    standby.kill()
    # What the replica missed came back through the outbox: rows whose publication marks died
    # with the primary were never marked and the relay published them again; rows marked
    # published by then through the relay's check of what Redis remembers or its reconciler.
    relay_log = processes.log("relay")
    how = {
        "loss detected": relay_log.count("Redis lost data"),
        "reconciled": relay_log.count("never reached a group"),
    }
    print(f"failover ({'with' if wait_replicas else 'without'} WAIT): {FLOW + WINDOW_ORDERS} orders settled "
          f"{recovered_s:.1f} s after the new primary took over; {how}")  # fmt: skip
    if not wait_replicas:  # the relay had marked published some events the new primary never got
        assert how["loss detected"] + how["reconciled"] >= 1
