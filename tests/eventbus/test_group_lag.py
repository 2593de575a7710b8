"""A consumer group's lag (entries not yet delivered to it) reads the same on the embedded Redis
6.2, which does not report it, and on Redis 7, which reports it except after entries were
deleted from the middle of the stream: `status`, the console, `check_drained` and
`/readyz?pipeline=1` all read it from Transport.groups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventbus.redis import embedded
from eventbus.redis.transport import Transport
from tests.processes import RedisServer
from tests.rediscluster import redis_server_7


def _binary(version: str) -> str:
    if version == "6.2":
        return str(embedded.server_binary())
    binary = redis_server_7()
    if binary is None:
        pytest.skip("no Redis 7 server installed (redis-server >= 7): the lag is tested on the embedded 6.2 only")
    return binary


@pytest.fixture(params=["6.2", "7"], ids=lambda v: f"redis-{v}")
def transport_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Transport]:
    server = RedisServer(tmp_path, persist=False, binary=_binary(request.param))
    server.start()
    transport = Transport(server.url)
    try:
        yield transport
    finally:
        transport.close()
        server.stop()


def _stream_with_group(transport: Transport, entries: int, delivered: int) -> list[str]:
    ids = [transport.client.xadd("s", {"n": str(n)}) for n in range(entries)]
    transport.ensure_group("s", "g")
    if delivered:
        transport.client.xreadgroup("g", "c1", {"s": ">"}, count=delivered)
    return [i.decode() if isinstance(i, bytes) else i for i in ids]


def _group(transport: Transport) -> object:
    (group,) = transport.groups("s")
    return group


def test_a_group_is_behind_by_the_entries_it_has_not_been_delivered(transport_of):
    _stream_with_group(transport_of, entries=5, delivered=2)
    group = _group(transport_of)
    assert (group.lag, group.pending) == (3, 2)


def test_a_group_that_has_read_everything_is_not_behind(transport_of):
    _stream_with_group(transport_of, entries=4, delivered=4)
    assert _group(transport_of).lag == 0


def test_entries_deleted_before_delivery_are_not_counted(transport_of):
    # Redis 7 reports no lag once an entry is deleted from the middle of the stream.
    ids = _stream_with_group(transport_of, entries=6, delivered=1)
    transport_of.client.xdel("s", ids[3])
    assert _group(transport_of).lag == 4
