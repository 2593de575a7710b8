"""Partition leases in Redis: which consumer of a group reads which partition stream. Part of
the Redis adapter (eventbus.redis.streams.Transport has these methods); the policy (how many to
hold, when to take and give back) is eventbus.runtime.leases'.

A lease is a key holding its owner's name with an expiry (SET NX PX), renewed and released only
by its owner (a script compares the name first), so a consumer that paused past the expiry can
neither renew nor delete the lease its successor now holds. The key of a partition's lease
carries the partition stream's name, hash tag included: it lives in the partition's slot. The
group's members are a sorted set of consumer names scored by when their membership expires.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis

from eventbus.redis.client import text, translated

__all__ = ["LeaseStore"]

# KEYS[1] the lease; ARGV[1] the owner, ARGV[2] the ttl in ms. 1 if renewed, 0 if not ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""
# KEYS[1] the members; ARGV[1] the consumer, ARGV[2] the ttl in ms. The live members.
_MEMBERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
# KEYS[1] the lease; ARGV[1] the owner. 1 if deleted, 0 if not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseStore:
    """The lease operations of a Transport, which provides `client`, `key`, `cluster` and
    `_per_master`."""

    client: redis.Redis
    cluster: bool
    _per_master: Callable[[Sequence[tuple[str, Callable[[redis.client.Pipeline], object]]]], list]

    def key(self, name: str) -> str:
        raise NotImplementedError

    def _lease_key(self, group: str, stream: str) -> str:
        return self.key(f"eventbus:lease:{group}:{stream}")

    def _members_key(self, group: str) -> str:
        return self.key(f"eventbus:lease-members:{group}")

    def _per_lease(
        self, group: str, streams: Sequence[str], command: Callable[[redis.client.Pipeline, str], object]
    ) -> list:
        """One command per partition's lease key, pipelined in one round trip; the replies. (EVAL goes
        through execute_command: a Redis Cluster pipeline refuses `pipe.eval`.)"""
        if not streams:
            return []
        if self.cluster:  # per master, never sent twice (eventbus.redis.cluster._rounds)
            keys = [self._lease_key(group, stream) for stream in streams]
            return self._per_master([(key, lambda pipe, key=key: command(pipe, key)) for key in keys])
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for stream in streams:
                command(pipe, self._lease_key(group, stream))
            return pipe.execute()

    def lease_members(self, group: str, consumer: str, *, ttl_ms: int) -> list[str]:
        """Renew `consumer`'s membership of the group's lease holders, forget members whose
        membership expired, and return the live members, sorted. Times are Redis's own clock,
        so hosts whose clocks disagree do not expire each other."""
        with translated():
            members = self.client.eval(_MEMBERS, 1, self._members_key(group), consumer, ttl_ms)
        return sorted(text(m) for m in members)

    def pending_elsewhere(self, group: str, consumer: str, streams: Sequence[str]) -> set[str]:
        """The streams on which a consumer of the group other than `consumer` holds pending
        entries (one XPENDING summary per stream, pipelined)."""
        if not streams:
            return set()
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for stream in streams:
                pipe.xpending(self.key(stream), group)
            summaries = pipe.execute()
        return {
            s for s, summary in zip(streams, summaries, strict=True)
            if any(text(c["name"]) != consumer for c in summary.get("consumers") or [])
        }  # fmt: skip

    def lease_leave(self, group: str, consumer: str) -> None:
        with translated():
            self.client.zrem(self._members_key(group), consumer)

    def lease_renew(self, group: str, consumer: str, streams: Sequence[str], *, ttl_ms: int) -> list[bool]:
        """Renew the leases of these partition streams if `consumer` still holds them."""
        replies = self._per_lease(
            group, streams, lambda pipe, key: pipe.execute_command("EVAL", _RENEW, 1, key, consumer, ttl_ms)
        )
        return [bool(r) for r in replies]

    def lease_acquire(self, group: str, consumer: str, streams: Sequence[str], *, ttl_ms: int) -> list[bool]:
        """Take the leases of these partition streams that nobody holds (SET NX PX)."""
        replies = self._per_lease(group, streams, lambda pipe, key: pipe.set(key, consumer, nx=True, px=ttl_ms))
        return [bool(r) for r in replies]

    def lease_release(self, group: str, consumer: str, streams: Sequence[str]) -> None:
        """Give back the leases of these partition streams if `consumer` still holds them."""
        self._per_lease(group, streams, lambda pipe, key: pipe.execute_command("EVAL", _RELEASE, 1, key, consumer))

    def lease_owners(self, group: str, streams: Sequence[str]) -> dict[str, str | None]:
        """Who holds the lease of each partition stream (None: nobody)."""
        owners = self._per_lease(group, streams, lambda pipe, key: pipe.get(key))
        return {s: (text(o) if o is not None else None) for s, o in zip(streams, owners, strict=True)}
