"""What a consumer group remembers in Redis about failed messages, so a restart keeps it: when
each is due again (a sorted set), when it first failed (a hash), and how many of its deliveries
only waited for a newer event version to be known (a hash; they do not count as attempts).

The messages themselves stay in the group's pending list; members here are "stream|entry id".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import redis

from eventbus.redis.client import text, translated

__all__ = ["MessageKey", "RetryStore"]

MessageKey = tuple[str, str]  # (stream, entry id)

# Atomically take the retries that are due, so two consumers of a group never take the same one.
_POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


def _member(message: MessageKey) -> str:
    return f"{message[0]}|{message[1]}"


class RetryStore:
    """The retry schedule and failure records of every group, on one Redis client."""

    def __init__(self, client: redis.Redis, key: Callable[[str], str]) -> None:
        self._client = client
        self._key = key

    @functools.cached_property
    def _pop_due(self) -> redis.commands.core.Script:  # on first use: a cluster client connects then
        return self._client.register_script(_POP_DUE)

    def _schedule_key(self, group: str) -> str:
        return self._key(f"eventbus:retry:{group}")

    def _first_key(self, group: str) -> str:
        return self._key(f"eventbus:first-failure:{group}")

    def _waits_key(self, group: str) -> str:
        return self._key(f"eventbus:version-waits:{group}")

    def schedule(self, group: str, due: dict[MessageKey, float]) -> None:
        """Remember when each failed message is due again (epoch seconds)."""
        if due:
            with translated():
                self._client.zadd(self._schedule_key(group), {_member(m): t for m, t in due.items()})

    def pop_due(self, group: str, *, now: float, limit: int) -> list[MessageKey]:
        """Take (and remove) up to `limit` messages due by `now`; no two consumers get one."""
        with translated():
            members = self._pop_due(keys=[self._schedule_key(group)], args=[now, limit])
        return [tuple(text(m).rsplit("|", 1)) for m in members]  # type: ignore[misc]

    def next_due(self, group: str) -> float | None:
        """When the group's soonest retry is due, or None if none is scheduled."""
        with translated():
            first = self._client.zrange(self._schedule_key(group), 0, 0, withscores=True)
        return first[0][1] if first else None

    def scheduled(self, group: str, messages: Sequence[MessageKey]) -> set[MessageKey]:
        """Those of the messages that wait for a scheduled retry."""
        if not messages:
            return set()
        with translated():
            scores = self._client.zmscore(self._schedule_key(group), [_member(m) for m in messages])
        return {m for m, score in zip(messages, scores, strict=True) if score is not None}

    def count(self, group: str) -> int:
        """How many messages of the group wait for a retry."""
        with translated():
            return self._client.zcard(self._schedule_key(group))

    def note_failures(
        self, group: str, messages: Sequence[MessageKey], at: float, *, waiting: Sequence[MessageKey] = ()
    ) -> tuple[dict[MessageKey, float], dict[MessageKey, int]]:
        """Record that these messages failed at `at` (a first failure already known is kept),
        and that those in `waiting` spent this delivery waiting for a newer event version. One
        round trip. Returns each message's first failure and its deliveries spent waiting."""
        if not messages:
            return {}, {}
        waiting_set = set(waiting)
        first_key, waits_key = self._first_key(group), self._waits_key(group)
        with translated():
            pipe = self._client.pipeline(transaction=False)
            for m in messages:
                pipe.hsetnx(first_key, _member(m), at)
                pipe.hget(first_key, _member(m))
                if m in waiting_set:
                    pipe.hincrby(waits_key, _member(m), 1)
                else:
                    pipe.hget(waits_key, _member(m))
            replies = iter(pipe.execute())
        first: dict[MessageKey, float] = {}
        waits: dict[MessageKey, int] = {}
        for m in messages:
            next(replies)
            first[m] = float(next(replies))
            waits[m] = int(next(replies) or 0)
        return first, waits

    def first_failures(self, group: str, messages: Sequence[MessageKey]) -> dict[MessageKey, float]:
        """When each of these messages first failed, for those that failed before."""
        if not messages:
            return {}
        with translated():
            values = self._client.hmget(self._first_key(group), [_member(m) for m in messages])
        return {m: float(v) for m, v in zip(messages, values, strict=True) if v is not None}

    def waits(self, group: str, messages: Sequence[MessageKey]) -> dict[MessageKey, int]:
        """How many deliveries of each message only waited for a newer event version."""
        if not messages:
            return {}
        with translated():
            values = self._client.hmget(self._waits_key(group), [_member(m) for m in messages])
        return {m: int(v) for m, v in zip(messages, values, strict=True) if v is not None}

    def forget(self, group: str, messages: Sequence[MessageKey]) -> None:
        """Forget the failures of messages that are done with (applied or dead-lettered)."""
        if messages:
            members = [_member(m) for m in messages]
            with translated():
                pipe = self._client.pipeline(transaction=False)
                pipe.hdel(self._first_key(group), *members)
                pipe.hdel(self._waits_key(group), *members)
                pipe.execute()
