"""Django's cache on the event bus's Redis: what every web worker and host shares (throttle
counts). REDIS_URL, or the embedded server when it is unset, resolved when the cache is first
used rather than at import.

The client gives up fast and never retries behind the caller's back: the cache is a helper of
the request, never a reason for it to wait. Callers that must not fail when Redis does (the
throttles) catch `CacheUnavailable`.

On a Redis Cluster (REDIS_URL `redis+cluster://...`) it speaks through redis-py's cluster client,
and every key starts with the hash tag OPTIONS["HASH_TAG"] (settings.INTAKE_SLOT_TAG): one slot,
so multi-key reads, the MULTI of `count` and the order intake's script all stay in one slot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventbus.redis.client import TransportUnavailable, make_client

__all__ = ["CacheUnavailable", "RedisCache"]


class CacheUnavailable(Exception):
    """Redis did not answer in time (or refused)."""


class _ClusterClient(RedisCacheClient):
    """Django's cache client with one redis-py cluster client in place of a pool per server."""

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._cluster: Any = None

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        if self._cluster is None:
            timeout = self._pool_options.get("socket_timeout")
            self._cluster = make_client(self._servers[0], socket_timeout=timeout, connect_timeout=timeout or 2.0)
        return self._cluster

    def set_many(self, data: dict[str, Any], timeout: int | None) -> None:  # a cluster pipeline has no MSET
        pipe = self.get_client(None, write=True).pipeline(transaction=False)
        for key, value in data.items():
            if timeout is not None and timeout <= 0:
                pipe.delete(key)  # as Django's EXPIRE 0 does
            else:
                pipe.set(key, self._serializer.dumps(value), ex=timeout)
        pipe.execute()


class RedisCache(DjangoRedisCache):
    """Django's Redis cache with short timeouts, no silent retries, a lazily resolved server,
    and atomic window counters."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        # Django builds a cache object per thread from the same settings: change a copy of them.
        params = {**params, "OPTIONS": dict(params.get("OPTIONS", {}))}
        options = params["OPTIONS"]
        timeout = options.pop("TIMEOUT_S", 0.1)
        options.setdefault("socket_timeout", timeout)
        options.setdefault("socket_connect_timeout", timeout)
        options.setdefault("retry", Retry(NoBackoff(), 0))
        options.setdefault("health_check_interval", 0)
        self._hash_tag = options.pop("HASH_TAG", "")
        super().__init__(server, params)
        if self._hash_tag:
            self._class = _ClusterClient

    def make_key(self, key: str, version: int | None = None) -> str:
        # The tag first: Redis Cluster hashes a key's first {...}, and a key may hold what a
        # client typed (a username with braces would otherwise pick its own slot).
        return self._hash_tag + super().make_key(key, version)

    @cached_property
    def _cache(self) -> Any:
        if not any(self._servers):  # the embedded server: started now, on first use, not when
            from eventbus.redis.transport import redis_url  # Django's checks build the cache object

            self._servers = [redis_url()]
        return super()._cache

    def count(self, windows: Sequence[tuple[str, int]], *, read: Sequence[str] = ()) -> tuple[list[int], list[int]]:
        """Add one to each counter `(key, window_s)` (a counter starts at 0 and lives window_s
        seconds from its first hit) and read the `read` counters without touching them, in one
        round trip and atomically (MULTI). Returns (counts after the hits, counts read)."""
        made = [self.make_and_validate_key(key) for key, _ in windows]
        looked = [self.make_and_validate_key(key) for key in read]
        try:
            client = self._cache.get_client(write=True)
            pipe = client.pipeline(transaction=True)
            for key, (_, window_s) in zip(made, windows, strict=True):
                pipe.set(key, 0, ex=window_s, nx=True)
                pipe.incr(key)
            for key in looked:
                pipe.get(key)
            replies = pipe.execute()
        except (
            redis.ConnectionError,
            redis.TimeoutError,
            redis.exceptions.BusyLoadingError,
            redis.exceptions.ClusterError,
            redis.exceptions.AskError,
            redis.exceptions.TryAgainError,
            redis.exceptions.RedisClusterException,
            TransportUnavailable,
            OSError,
        ) as exc:  # fmt: skip  (a cluster: a slot moving, a failover, or no node answering)
            raise CacheUnavailable(str(exc) or type(exc).__name__) from exc
        hits = [int(v) for v in replies[1 : 2 * len(made) : 2]]
        reads = [int(v or 0) for v in replies[2 * len(made) :]]
        return hits, reads
