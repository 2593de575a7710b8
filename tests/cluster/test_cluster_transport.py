"""The Redis adapter on a real Redis Cluster (tests.rediscluster): publishing groups entries by
master (XADDs, wake-ups and WAIT on one connection each), a consumer whose partitions spread
over several masters waits on sharded wake-ups instead of polling, WAIT refuses to count entries
a paused replica has not confirmed, and the cache and the intake keep their keys in one slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from django.core.cache import caches

from config import throttling
from eventbus.redis.client import TransportUnavailable
from eventbus.redis.slots import ShardedSubscription, slot, wake_channel
from eventbus.redis.streams import Transport
from tests.cluster.conftest import LocalCluster
from tests.rediscluster import cluster_settings

pytestmark = pytest.mark.cluster

STREAMS = [f"orders:{{p{i}}}" for i in range(8)]


@pytest.fixture
def transport(clean_cluster: LocalCluster) -> Iterator[Transport]:
    t = Transport(clean_cluster.url, prefix="t:", wait_timeout_ms=200)
    for stream in STREAMS:
        t.ensure_group(stream, "g")
    yield t
    t.close()


def test_a_publish_lands_on_every_partition_master_and_reads_back_in_order(transport: Transport, clean_cluster):
    entries = [(s, {"type": "x", "event": str(n)}) for n in range(3) for s in STREAMS]
    ids = transport.publish(entries, mark=["e1", "e2"])
    assert len(ids) == len(entries)
    assert all(ids)
    assert sorted(transport.take_published_marks(10)) == ["e1", "e2"]
    assert len({clean_cluster.master_of_key("t:" + s) for s in STREAMS}) == 3
    messages = transport.read("g", "c", dict.fromkeys(STREAMS, ">"), count=10, block_ms=None)
    assert len(messages) == 24
    for stream in STREAMS:  # each partition's entries in publish order
        assert [m.fields[b"event"] for m in messages if m.stream == stream] == [b"0", b"1", b"2"]


def test_a_reader_of_partitions_on_several_masters_is_woken_by_a_publish_not_by_its_block(transport: Transport):
    threading.Timer(0.3, lambda: transport.publish([(STREAMS[5], {"type": "x", "event": "late"})])).start()
    started = time.monotonic()
    messages = transport.read("g", "c", dict.fromkeys(STREAMS, ">"), count=10, block_ms=30_000)
    assert [m.fields[b"event"] for m in messages] == [b"late"]
    assert time.monotonic() - started < 15  # woken by the publish, not at the end of its 30 s block
    # a replayed dead letter wakes it too
    replay = transport.replay_stream("g")
    transport.ensure_group(replay, "g")
    threading.Timer(0.3, lambda: transport.replay("g", {"type": "x", "event": "again"})).start()
    started = time.monotonic()
    messages = transport.read("g", "c", {**dict.fromkeys(STREAMS, ">"), replay: ">"}, count=10, block_ms=30_000)
    assert [m.fields[b"event"] for m in messages] == [b"again"]
    assert time.monotonic() - started < 15


def test_wait_counts_nothing_published_while_the_replica_of_its_master_is_paused(
    clean_cluster: LocalCluster,
):
    transport = Transport(clean_cluster.url, prefix="w:", wait_replicas=1, wait_timeout_ms=200)
    try:
        transport.publish([(STREAMS[0], {"type": "x", "event": "1"})], mark=["before"])
        assert transport.take_published_marks(10) == ["before"]
        master = clean_cluster.master_of_key("w:" + STREAMS[0])
        replica = clean_cluster.replica_of(master)
        clean_cluster.pause(replica)
        try:
            with pytest.raises(TransportUnavailable, match="WAIT"):
                transport.publish([(STREAMS[0], {"type": "x", "event": "2"})], mark=["during"])
            assert transport.take_published_marks(10) == []  # nothing counted as published
        finally:
            clean_cluster.resume(replica)
        transport.publish([(STREAMS[0], {"type": "x", "event": "3"})], mark=["after"])
        assert transport.take_published_marks(10) == ["after"]
    finally:
        transport.close()


def test_every_key_of_the_cache_shares_one_slot(settings):
    """The rate limits' keys as the code builds them (a request counts several in one MULTI), and
    a key holding what a client typed with braces of its own: one slot."""
    on_cluster = cluster_settings(settings, "redis+cluster://127.0.0.1:1", "p:")
    on_cluster["CACHES"]["default"]["KEY_PREFIX"] = "p:cache"
    settings.INTAKE_SLOT_TAG, settings.CACHES = on_cluster["INTAKE_SLOT_TAG"], on_cluster["CACHES"]
    cache = caches["default"]
    keys = [cache.make_and_validate_key(f"throttle:{scope}:5:60:1") for scope in ("orders", "writes")]
    keys.append(cache.make_and_validate_key("login-failed:user:{x}"))
    assert {k: slot(k) for k in keys} == dict.fromkeys(keys, slot("p:orders.intake"))
    assert slot(wake_channel("p:orders:{p3}")) == slot("p:orders:{p3}")


def test_rate_limits_fail_open_when_no_cluster_node_answers(settings):
    settings.THROTTLES_ENABLED = True
    settings.CACHES = cluster_settings(settings, "redis+cluster://127.0.0.1:1", "")["CACHES"]
    try:
        assert throttling.breaker.count([("a", 60)]) is None  # served unthrottled, not a 500
    finally:
        throttling.breaker.reset()


def test_the_cache_counts_rate_limits_atomically_in_one_slot_of_a_cluster(clean_cluster: LocalCluster, settings):
    settings.CACHES = cluster_settings(settings, clean_cluster.url, "c:")["CACHES"]
    cache = caches["default"]
    assert cache.make_and_validate_key("x").startswith("{c:orders.intake}")
    hits, reads = cache.count([("a", 60), ("b", 60)], read=["c"])
    assert (hits, reads) == ([1, 1], [0])
    assert cache.count([("a", 60)], read=["b"]) == ([2], [1])
    cache.set_many({"k1": 1, "k2": 2})
    assert cache.get_many(["k1", "k2"]) == {"k1": 1, "k2": 2}


def test_a_wake_up_subscription_pings_and_says_when_its_node_stops_answering(
    transport: Transport, clean_cluster: LocalCluster, monkeypatch
):
    """A half-open connection never fails by itself: the subscription pings its node and calls
    the connection broken when nothing came back for three pings (the reader then reads and
    subscribes anew)."""
    monkeypatch.setattr(ShardedSubscription, "PING_S", 0.5)
    channel = wake_channel("t:" + STREAMS[0])
    subscription = ShardedSubscription(transport.client, transport.url, [channel])
    try:
        threading.Event().wait(2.5)  # five pings answered
        assert subscription.broken is None
        assert subscription.wait(0.1) is False
        node = clean_cluster.master_of_key(channel)
        clean_cluster.pause(node)
        try:
            with pytest.raises(TransportUnavailable, match="no answer"):
                subscription.wait(10)
        finally:
            clean_cluster.resume(node)
    finally:
        subscription.close()
