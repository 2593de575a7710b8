"""The local Redis Cluster harness itself: it starts with every slot served and every replica
attached, and a replica takes over when its master is killed."""

from __future__ import annotations

import time

import pytest
import redis
from redis.crc import key_slot

from tests.rediscluster import LocalCluster

pytestmark = pytest.mark.cluster


def test_the_cluster_starts_with_three_masters_and_three_replicas(clean_cluster: LocalCluster) -> None:
    assert len(clean_cluster.masters()) == 3
    assert len(clean_cluster.replicas()) == 3
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < 20:
        keys.setdefault(key_slot(f"key:{i}".encode()), f"key:{i}")
        i += 1
    client = redis.RedisCluster.from_url(f"redis://127.0.0.1:{clean_cluster.masters()[0]}")
    try:
        for slot, key in keys.items():
            assert client.set(key, f"value {slot}")
        for slot, key in keys.items():
            assert client.get(key) == f"value {slot}".encode()
    finally:
        client.close()
    assert {clean_cluster.master_of_key(key) for key in keys.values()} == set(clean_cluster.masters())
    assert clean_cluster.url.startswith("redis+cluster://127.0.0.1:")


def test_a_replica_takes_over_when_its_master_is_killed(clean_cluster: LocalCluster) -> None:
    """Kills a master, then restarts it (it rejoins as a replica): the module's cluster has
    three masters and three replicas again afterwards."""
    client = redis.RedisCluster.from_url(f"redis://127.0.0.1:{clean_cluster.masters()[0]}")
    try:
        client.set("k", "before the failover")
    finally:
        client.close()
    master = clean_cluster.master_of_key("k")
    replica = clean_cluster.replica_of(master)
    clean_cluster.wait_replicated()

    started = time.monotonic()
    clean_cluster.kill(master)
    clean_cluster.wait_for_master(replica)
    print(f"failover took {time.monotonic() - started:.1f} s")

    assert clean_cluster.master_of_key("k") == replica
    client = redis.RedisCluster.from_url(f"redis://127.0.0.1:{replica}")
    try:
        assert client.get_node_from_key("k").port == replica
        assert client.get("k") == b"before the failover"
        assert client.set("k", "after the failover")
        assert client.get("k") == b"after the failover"
    finally:
        client.close()

    clean_cluster.restart(master)
    started = time.monotonic()
    clean_cluster.wait_ok()
    print(f"the old master rejoined as a replica in {time.monotonic() - started:.1f} s")
    assert clean_cluster.replica_of(replica) == master
    assert len(clean_cluster.masters()) == 3
    assert len(clean_cluster.replicas()) == 3
