"""Partitioned streams: each logical stream (`orders`) split into EVENTBUS_PARTITIONS partition
streams, an event going to the partition its aggregate id hashes to, so every event of one order
lands on one partition in publish order. Within a consumer group each partition is read by one
consumer at a time (eventbus.runtime.leases), which keeps each order's events in order.

Names: with one partition (the default) a stream keeps its logical name, so existing data and
key names keep working. With more, partition k of `orders` is `orders:{p3}`-style: the braces
are a Redis Cluster hash tag, so everything kept per partition lives in one slot and different
partitions spread over the cluster's masters.

A stream can opt out (`class X(Event, stream=..., partitioned=False)`): the order intake, whose
entries the web appends before any order exists, is one stream read first-come first-served.
"""

from __future__ import annotations

import re
import zlib

from django.conf import settings

__all__ = ["count", "expand", "leased", "logical", "partition_of", "stream_name"]

_NAME = re.compile(r"^(?P<stream>.+):\{p(?P<partition>\d+)\}$")


def count() -> int:
    return max(1, int(settings.EVENTBUS.get("PARTITIONS", 1)))


def partition_of(aggregate_id: str, partitions: int) -> int:
    """The partition of an aggregate: a stable hash (CRC-32, the same in every process and
    release), not Python's hash(), which differs per process."""
    return zlib.crc32(aggregate_id.encode()) % partitions


def stream_name(stream: str, partition: int, partitions: int | None = None) -> str:
    """The key name of one partition of a logical stream."""
    if (partitions or count()) == 1:
        return stream
    return f"{stream}:{{p{partition}}}"


def stream_for(stream: str, aggregate_id: str, *, partitioned: bool = True) -> str:
    """The stream an event of this aggregate goes to."""
    n = count()
    if n == 1 or not partitioned:
        return stream
    return stream_name(stream, partition_of(aggregate_id, n), n)


def expand(stream: str, *, partitioned: bool = True) -> list[str]:
    """Every partition stream of a logical stream, in partition order."""
    n = count()
    if n == 1 or not partitioned:
        return [stream]
    return [stream_name(stream, p, n) for p in range(n)]


def logical(name: str) -> tuple[str, int | None]:
    """(logical stream, partition) of a stream name; partition None if it is not one."""
    m = _NAME.match(name)
    return (m["stream"], int(m["partition"])) if m else (name, None)


def leased(streams: list[str]) -> list[str]:
    """The partition streams among these: the ones a group's consumers read under a lease."""
    return [s for s in streams if logical(s)[1] is not None]
