"""Harness for the Redis Cluster tests: a real local cluster (3 masters, 3 replicas) of Redis 7
servers on free ports of 127.0.0.1 (tests.rediscluster), shared by the tests of a module. A test
that kills or pauses a node changes it for the tests after it in the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rediscluster import LocalCluster, redis_server_7


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if redis_server_7() is None:
        pytest.skip("no Redis 7 server binary (redis-server >= 7) is installed: the Redis Cluster tests need one")
    cluster = LocalCluster(tmp_path_factory.mktemp("rediscluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def clean_cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The module's cluster, settled (a test before may have paused or killed a node) and with
    every live master flushed."""
    local_cluster.wait_ok(timeout=60)
    local_cluster.flushall()
    return local_cluster
