"""What the bus's processes record about themselves in Redis for operators: heartbeats
(eventbus.runtime.heartbeats) and counters of figures over time (eventbus.redis.timeseries). Part of the Redis
adapter (eventbus.redis.streams.Transport has these methods).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis

from eventbus.redis.client import text, translated

__all__ = ["ProcessRecords"]


class ProcessRecords:
    """The operator-facing records of a Transport, which provides `client` and `key`."""

    client: redis.Redis

    def key(self, name: str) -> str:
        raise NotImplementedError

    def heartbeat_set(self, index: str, key: str, name: str, value: str, *, ttl_s: int, now: float) -> None:
        """Store a process's beat for ttl_s seconds and list it in the index, in one round trip."""
        with translated():
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.key(key), value, ex=ttl_s)
            pipe.zadd(self.key(index), {name: now + ttl_s})
            pipe.execute()

    def heartbeat_delete(self, index: str, key: str, name: str) -> None:
        with translated():
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.key(key))
            pipe.zrem(self.key(index), name)
            pipe.execute()

    def hash_increments(self, increments: dict[str, dict[str, int]], *, ttl_s: int) -> None:
        """HINCRBY every field of every hash and give each hash ttl_s to live, in one round trip."""
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for key, fields in increments.items():
                for field, n in fields.items():
                    pipe.hincrby(self.key(key), field, n)
                pipe.expire(self.key(key), ttl_s)
            pipe.execute()

    def hashes(self, keys: Sequence[str]) -> list[dict[str, int]]:
        """HGETALL of each hash (counts), in one round trip; {} for a missing one."""
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(self.key(key))
            replies = pipe.execute()
        return [{text(f): int(v) for f, v in reply.items()} for reply in replies]

    def heartbeats(self, index: str, key_of: Callable[[str], str], *, now: float) -> list[bytes]:
        """The beats that have not expired (expired names are dropped from the index)."""
        with translated():
            self.client.zremrangebyscore(self.key(index), "-inf", now)
            names = [text(n) for n in self.client.zrange(self.key(index), 0, -1)]
            if not names:
                return []
            keys = [self.key(key_of(n)) for n in names]
            values = self.client.mget_nonatomic(keys) if self.cluster else self.client.mget(keys)  # slots apart
        return [v for v in values if v is not None]
