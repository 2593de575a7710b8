"""The intake's Redis side: a web process takes requests onto an intake stream from its asyncio
event loop, many requests in one round trip; the consumer that writes them releases them. Part
of the Redis adapter (eventbus.redis_streams.Transport has IntakeRecords' methods).

Taking one request is one Lua script, atomic in Redis: count the request against its rate
limits, find an earlier request with the same idempotency key, count what its owner holds in
intake, and only if all of that allows it XADD the entry, store a record of it (a status page
shows it until the database has it) and hold it against its owner. Requests arriving while a
round trip is in flight wait for the next: under load one carries hundreds, idle it carries one.
Before a round trip leaves, requests whose deadline passed or whose client went away are
dropped: nothing is taken for somebody who left.

Durability: a reply means Redis has the entry in memory (on disk only with `appendfsync always`);
with `wait_replicas`, on that many replicas too (WAIT in the same round trip). A reply WAIT did
not confirm is answered as not taken (a retry with the Idempotency-Key gets the same order).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from eventbus.redis_client import TransportUnavailable, is_cluster, make_client, node_url, text, translated
from eventbus.redis_slots import wake_channel

__all__ = ["Abandoned", "Ambiguous", "Expired", "IntakeFront", "IntakeRecords", "Outcome", "TakeRequest"]

# KEYS: stream, record, held set, idempotency key ('' slot: the record again), throttle keys...
# ARGV: 1 type, 2 body, 3 record, 4 record ttl s, 5 now ms, 6 held window ms, 7 held limit,
#       8 member, 9 idempotency value ('' for none), 10 idempotency ttl s, then (limit, window s)
#       per throttle key.
_TAKE = """
local throttles = #KEYS - 4
for i = 1, throttles do
  local key = KEYS[4 + i]
  redis.call('SET', key, 0, 'EX', tonumber(ARGV[10 + 2 * i]), 'NX')
  if redis.call('INCR', key) > tonumber(ARGV[9 + 2 * i]) then
    return {'throttled', tostring(redis.call('TTL', key))}
  end
end
if ARGV[9] ~= '' then
  local earlier = redis.call('GET', KEYS[4])
  if earlier then return {'replay', earlier} end
end
local held_limit = tonumber(ARGV[7])
if held_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[5]) - tonumber(ARGV[6]))
  if redis.call('ZCARD', KEYS[3]) >= held_limit then return {'held', ARGV[7]} end
end
local id = redis.call('XADD', KEYS[1], '*', 'type', ARGV[1], 'event', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[4]))
redis.call('ZADD', KEYS[3], tonumber(ARGV[5]), ARGV[8])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[6]))
if ARGV[9] ~= '' then redis.call('SET', KEYS[4], ARGV[9], 'EX', tonumber(ARGV[10])) end
return {'taken', id}
"""


class Expired(Exception):
    """The request waited past its deadline before its round trip could leave: not taken."""


class Ambiguous(TransportUnavailable):
    """Redis may or may not have taken the request (no answer in time, or WAIT found too few
    replicas): a client should retry with its Idempotency-Key, not place it another way."""


class Abandoned(Exception):
    """The request's client went away before its round trip left: not taken."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What Redis said: `taken` (value: the entry id), `throttled` (value: seconds to wait),
    `replay` (value: what the earlier request with the same key stored), `held` (value: the
    most its owner may hold)."""

    kind: str
    value: str


@dataclass(slots=True)
class TakeRequest:
    """One request to take: the keys and arguments of the script (see _TAKE), when to give up,
    and how to tell whether its client is still there."""

    stream: str
    record_key: str
    held_key: str
    member: str
    type: str
    body: str
    record: str
    record_ttl_s: int
    held_window_ms: int
    held_limit: int
    idempotency_key: str = ""
    idempotency_value: str = ""
    idempotency_ttl_s: int = 86400
    throttles: Sequence[tuple[str, int, int]] = ()  # (key, limit, window_s)
    deadline: float = 0.0  # time.monotonic()
    wanted: Callable[[], bool] = lambda: True
    future: asyncio.Future[Outcome] | None = field(default=None, repr=False)

    def command(self, now_ms: int) -> tuple[list[str], list[str | int]]:
        keys = [self.stream, self.record_key, self.held_key, self.idempotency_key or self.record_key]
        keys += [key for key, _, _ in self.throttles]
        args: list[str | int] = [
            self.type, self.body, self.record, self.record_ttl_s, now_ms, self.held_window_ms, self.held_limit,
            self.member, self.idempotency_value, self.idempotency_ttl_s,
        ]  # fmt: skip
        for _, limit, window_s in self.throttles:
            args += [limit, window_s]
        return keys, args


class IntakeFront:
    """Take requests from one event loop, many per round trip (see the module docstring).
    Create it inside the loop that uses it."""

    def __init__(
        self, url: str, *, max_connections: int = 4, max_batch: int = 512, wait_replicas: int = 0,
        wait_timeout_ms: int = 500, socket_timeout_s: float = 5.0,
    ) -> None:  # fmt: skip
        self._url, self._max_connections, self._socket_timeout_s = url, max_connections, socket_timeout_s
        # On a Redis Cluster every key a request touches shares the intake stream's slot: the front
        # talks to its master alone (found on first use, again after a failover; WAIT needs that).
        self.cluster = is_cluster(url)
        self.client: aioredis.Redis | None = None if self.cluster else self._connect(url)
        self.max_batch = max_batch
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._waiting: list[TakeRequest] = []
        self._flusher: asyncio.Task[None] | None = None
        self._sha: str | None = None

    def _connect(self, url: str) -> aioredis.Redis:
        self._pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=self._max_connections, timeout=self._socket_timeout_s,
            socket_timeout=self._socket_timeout_s, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        return aioredis.Redis.from_pool(self._pool)  # closing the client closes its pool

    async def _client(self, key: str) -> aioredis.Redis:
        if self.client is None:  # a cluster: a short-lived cluster client finds the slot's master

            def master() -> str:
                cluster = make_client(self._url, socket_timeout=1.0, connect_timeout=1.0)
                try:
                    with translated():
                        node = cluster.get_node_from_key(key)
                        return node_url(self._url, node.host, node.port)
                finally:
                    cluster.close()

            url = await asyncio.to_thread(master)
            self.client = self.client or self._connect(url)  # (unless found meanwhile)
        return self.client

    async def _forget_master(self) -> None:  # on a cluster: find the master again next time
        if self.cluster and self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):
                await client.aclose()

    @property
    def waiting(self) -> int:
        """Requests waiting for a round trip."""
        return len(self._waiting)

    async def take(self, request: TakeRequest) -> Outcome:
        """Take the request in the next round trip. Raises Expired, Abandoned, or
        TransportUnavailable (Redis did not answer, or WAIT found too few replicas: the
        request may or may not have been taken)."""
        request.future = asyncio.get_running_loop().create_future()
        self._waiting.append(request)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await request.future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            now = time.monotonic()
            live = []
            for request in batch:
                assert request.future is not None
                if request.future.done():  # its handler was cancelled
                    continue
                if now > request.deadline:
                    request.future.set_exception(Expired())
                elif not request.wanted():
                    request.future.set_exception(Abandoned())
                else:
                    live.append(request)
            if live:
                await self._send(live)

    async def _send(self, batch: list[TakeRequest]) -> None:
        now_ms = int(time.time() * 1000)
        try:
            replies = await self._execute(batch, now_ms)
        except TransportUnavailable as exc:
            await self._forget_master()
            for request in batch:
                if request.future and not request.future.done():
                    request.future.set_exception(type(exc)(str(exc)))
            return
        confirmed = True
        if self.wait_replicas:
            acked = replies.pop()
            confirmed = isinstance(acked, int) and acked >= self.wait_replicas
        if self.cluster:
            replies.pop()  # the wake-up
            if any(isinstance(r, (redis.exceptions.AskError, redis.exceptions.ClusterDownError)) for r in replies):
                await self._forget_master()  # a slot moved or a failover runs: nothing ran
        for request, reply in zip(batch, replies, strict=True):
            if request.future is None or request.future.done():
                continue
            if isinstance(reply, Exception):
                request.future.set_exception(TransportUnavailable(str(reply)))
            elif reply[0] == b"taken" and not confirmed:
                request.future.set_exception(
                    Ambiguous(f"WAIT: fewer than {self.wait_replicas} replica(s) confirmed the entry")
                )
            else:
                request.future.set_result(Outcome(text(reply[0]), text(reply[1])))

    async def _execute(self, batch: list[TakeRequest], now_ms: int) -> list:
        for attempt in (1, 2):
            try:
                client = await self._client(batch[0].stream)
                if self._sha is None:
                    self._sha = text(await client.script_load(_TAKE))
                async with client.pipeline(transaction=False) as pipe:
                    for request in batch:
                        keys, args = request.command(now_ms)
                        pipe.evalsha(self._sha, len(keys), *keys, *args)
                    if self.cluster:  # consumers reading several slots wait on wake-ups
                        pipe.execute_command("SPUBLISH", wake_channel(batch[0].stream), b"1")
                    if self.wait_replicas:
                        pipe.wait(self.wait_replicas, self.wait_timeout_ms)
                    replies = await pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError) as exc:
                if isinstance(exc, redis.exceptions.BusyLoadingError) or "connecting to" in str(exc):
                    raise TransportUnavailable(str(exc)) from exc  # nothing was sent
                raise Ambiguous(str(exc) or type(exc).__name__) from exc
            except (redis.TimeoutError, OSError) as exc:
                raise Ambiguous(str(exc) or type(exc).__name__) from exc
            if attempt == 1 and any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
                self._sha = None  # Redis restarted and forgot the script: nothing ran, send again
                continue
            return replies
        raise TransportUnavailable("Redis keeps forgetting the intake script")

    async def get(self, key: str) -> bytes | None:
        try:
            return await (await self._client(key)).get(key)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise TransportUnavailable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aclose()  # type: ignore[union-attr]
            await self._pool.disconnect()


class IntakeRecords:
    """The synchronous side: what a Transport (with `client` and `key`) reads and releases."""

    client: redis.Redis

    def key(self, name: str) -> str:
        raise NotImplementedError

    def intake_record(self, name: str) -> bytes | None:
        """The record the web stored when it took a request (None once it expired)."""
        with translated():
            return self.client.get(self.key(name))

    def intake_release(self, held: Sequence[tuple[str, str]], records: Sequence[str] = ()) -> None:
        """Stop holding these (held set, member) against their owners and forget these records:
        the database has them."""
        if not held and not records:
            return
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for name, member in held:
                pipe.zrem(self.key(name), member)
            if records:
                pipe.unlink(*(self.key(name) for name in records))
            pipe.execute()
