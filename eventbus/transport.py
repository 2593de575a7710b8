"""Redis Streams transport: the only module of the project that imports `redis`.

Everything above it speaks in logical stream names (`orders`), consumer groups and message ids;
this module adds the key prefix, translates Redis failures into two exceptions
(`TransportUnavailable`, `GroupMissing`) and keeps the traps of redis-py away from callers:
commands are never retried silently (a retried XADD would duplicate an entry), and a blocking
XREADGROUP runs on a client whose socket timeout is longer than the block.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventbus import embedded

log = logging.getLogger(__name__)

Fields = dict[bytes, bytes]


# Event ids published on commit whose outbox rows the relay has yet to delete.
PUBLISHED_SET = "eventbus:published"


class TransportUnavailable(Exception):
    """Redis cannot be reached (refused, timed out, loading its data set, read-only)."""


class GroupMissing(Exception):
    """The stream or its consumer group no longer exists (NOGROUP)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One stream entry as a consumer sees it. `fields` is None for a tombstone: an entry still
    pending in the group whose data was deleted from the stream."""

    stream: str
    id: str
    fields: Fields | None


@dataclass(frozen=True, slots=True)
class GroupInfo:
    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    lag: int | None


def display_url(url: str) -> str:
    """The URL with any password masked, for messages people read."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def redis_url() -> str:
    """REDIS_URL, or the URL of the embedded server under var/redis/ (started on first use)."""
    return settings.REDIS_URL or embedded.ensure_server(settings.VAR_DIR / "redis")


def unreachable_message(url: str, exc: BaseException | None = None) -> str:
    if settings.REDIS_URL and settings.EMBEDDED_REDIS:
        hint = "start Redis there, or unset REDIS_URL to use the embedded server"
    elif settings.REDIS_URL:
        hint = "start Redis there, or fix REDIS_URL"
    else:
        hint = f"the embedded server under {settings.VAR_DIR / 'redis'} did not answer; see redis.log there"
    detail = f" ({exc})" if exc else ""
    return f"REDIS_URL is unreachable ({display_url(url)}){detail}: {hint}"


_ERRORS_UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    OSError,
)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except redis.ResponseError as exc:
        # Redis 7 ends a blocked XREADGROUP on a deleted stream with UNBLOCKED instead of NOGROUP.
        if str(exc).startswith(("NOGROUP", "UNBLOCKED the stream key no longer exists")):
            raise GroupMissing(str(exc)) from exc
        if isinstance(exc, _ERRORS_UNAVAILABLE):
            raise TransportUnavailable(str(exc)) from exc
        raise
    except _ERRORS_UNAVAILABLE as exc:
        raise TransportUnavailable(str(exc) or exc.__class__.__name__) from exc


# Atomically take the retries that are due, so two consumers of a group never take the same one.
_POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


class Transport:
    """A connection to one Redis with the stream operations the relay and consumers need.

    Thread-safe (redis-py clients pool their connections). Create it with `get_transport()`.
    """

    def __init__(
        self, url: str, *, prefix: str = "", client_name: str | None = None, publish_timeout_s: float = 0.25
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._client_name = client_name
        self.client = self._make_client(socket_timeout=10.0)
        # Publishing right after a commit happens while a client waits for its answer: give up
        # soon (the relay publishes what this could not) rather than hold the request.
        self._prompt = self._make_client(socket_timeout=publish_timeout_s, connect_timeout=publish_timeout_s)
        # XAUTOCLAIM ... JUSTID: keep the raw reply (redis-py's parser drops the cursor).
        self.client.set_response_callback("XAUTOCLAIM", lambda response, **options: response)
        self._blocking: dict[int, redis.Redis] = {}
        self._pop_due = self.client.register_script(_POP_DUE)

    def _make_client(self, *, socket_timeout: float | None, connect_timeout: float = 2.0) -> redis.Redis:
        options: dict[str, object] = {}
        if not self.url.startswith("unix:"):
            options["socket_keepalive"] = True  # notice a dead peer on a long blocking read
        return redis.Redis.from_url(
            self.url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),  # never resend a command behind our back
            client_name=self._client_name,
            **options,
        )

    def close(self) -> None:
        self.client.close()
        self._prompt.close()
        for client in self._blocking.values():
            client.close()

    # --- names ------------------------------------------------------------------------------

    def key(self, name: str) -> str:
        return self.prefix + name

    def _name(self, key: bytes | str) -> str:
        key = key.decode() if isinstance(key, bytes) else key
        return key[len(self.prefix) :] if self.prefix and key.startswith(self.prefix) else key

    @staticmethod
    def replay_stream(group: str) -> str:
        """The stream that carries replayed dead letters to one group only."""
        return f"eventbus:replay:{group}"

    @staticmethod
    def deadletter_stream(group: str) -> str:
        return f"eventbus:dead:{group}"

    def _retry_key(self, group: str) -> str:
        return self.key(f"eventbus:retry:{group}")

    # --- health -----------------------------------------------------------------------------

    def ping(self, *, timeout_s: float | None = None) -> None:
        """PING Redis; TransportUnavailable if it does not answer. With timeout_s, on a
        connection of its own that waits no longer than that, so a stalled server cannot hold
        the caller (a health check) for the shared client's timeouts."""
        with _translated():
            if timeout_s is None:
                self.client.ping()
                return
            client = redis.Redis.from_url(
                self.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
            )
            try:
                client.ping()
            finally:
                client.close()

    # --- publishing -------------------------------------------------------------------------

    def publish(
        self, entries: Sequence[tuple[str, Fields | dict[str, str]]], *, mark: Sequence[str] = (), prompt: bool = False
    ) -> list[str]:
        """XADD every entry in one pipelined round trip, in order, and return the new ids; with
        `mark`, also add those event ids to the published set, in the same round trip. With
        `prompt`, give up after EVENTBUS["PUBLISH_TIMEOUT_S"] (someone is waiting).

        Not transactional: if the connection drops half-way some entries may be on the stream;
        the caller publishes them again and consumers drop the duplicates by event id.
        """
        with _translated():
            pipe = (self._prompt if prompt else self.client).pipeline(transaction=False)
            for stream, fields in entries:
                pipe.xadd(self.key(stream), fields)
            if mark:
                pipe.sadd(self.key(PUBLISHED_SET), *mark)
            replies = pipe.execute()
        return [_text(i) for i in replies[: len(entries)]]

    def take_published_marks(self, limit: int) -> list[str]:
        """Take (and remove) up to `limit` event ids that producers published on commit."""
        with _translated():
            return [_text(i) for i in self.client.spop(self.key(PUBLISHED_SET), limit) or ()]

    # --- groups -----------------------------------------------------------------------------

    def ensure_group(self, stream: str, group: str) -> bool:
        """Create the group (and the stream) reading from the start; True if it was created."""
        with _translated():
            try:
                self.client.xgroup_create(self.key(stream), group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if str(exc).startswith("BUSYGROUP"):
                    return False
                raise
        return True

    def groups(self, stream: str) -> list[GroupInfo]:
        with _translated():
            try:
                rows = self.client.xinfo_groups(self.key(stream))
            except redis.ResponseError as exc:
                if "no such key" in str(exc):
                    return []
                raise
        return [
            GroupInfo(
                name=_text(r["name"]),
                consumers=r["consumers"],
                pending=r["pending"],
                last_delivered_id=_text(r["last-delivered-id"]),
                lag=r.get("lag"),
            )
            for r in rows
        ]

    def consumers(self, stream: str, group: str) -> list[dict[str, object]]:
        with _translated():
            rows = self.client.xinfo_consumers(self.key(stream), group)
        return [{"name": _text(r["name"]), "pending": r["pending"], "idle_ms": r["idle"]} for r in rows]

    def stream_length(self, stream: str) -> int:
        with _translated():
            return self.client.xlen(self.key(stream))

    # --- reading ----------------------------------------------------------------------------

    def read(
        self, group: str, consumer: str, ids: dict[str, str], *, count: int, block_ms: int | None
    ) -> list[Message]:
        """XREADGROUP on several streams: per stream `>` for new messages, or an id for this
        consumer's own pending messages after that id. Blocks up to block_ms when none are new."""
        client = self.client if not block_ms else self._blocking_client(block_ms)
        with _translated():
            reply = client.xreadgroup(
                group, consumer, {self.key(s): i for s, i in ids.items()}, count=count, block=block_ms or None
            )
        return self._messages(reply)

    def _blocking_client(self, block_ms: int) -> redis.Redis:
        """A client whose socket timeout outlasts the block. One per minute of block time (in
        practice one): the block of each read varies, and a client per value would open a
        new connection for almost every read."""
        minutes = max(1, -(-block_ms // 60_000))
        client = self._blocking.get(minutes)
        if client is None:
            client = self._blocking[minutes] = self._make_client(socket_timeout=minutes * 60 + 10.0)
        return client

    def _messages(self, reply: object) -> list[Message]:
        out: list[Message] = []
        if isinstance(reply, dict):  # RESP3
            reply = [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
        for key, entries in reply or ():
            stream = self._name(key)
            for entry_id, fields in entries:
                out.append(Message(stream, _text(entry_id), fields or None))
        return out

    def autoclaim_ids(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, start: str = "0-0", count: int = 100
    ) -> tuple[str, list[str], list[str]]:
        """One XAUTOCLAIM ... JUSTID step: (next cursor, ids now owned by `consumer`, ids deleted
        from the stream). JUSTID does not count as a delivery, so looking does not use up an
        attempt; the caller XCLAIMs the ids it will process. Loop until the cursor is 0-0."""
        with _translated():
            reply = self.client.execute_command(
                "XAUTOCLAIM", self.key(stream), group, consumer, min_idle_ms, start, "COUNT", count, "JUSTID"
            )
        cursor, ids = _text(reply[0]), [_text(i) for i in reply[1]]
        deleted = [_text(i) for i in reply[2]] if len(reply) > 2 else []  # Redis 7 reports them
        return cursor, ids, deleted

    def pending_ids(self, stream: str, group: str, consumer: str, *, after: str = "-", count: int = 100) -> list[str]:
        """Ids pending for one consumer, oldest first, after `after` (XPENDING: not a delivery)."""
        start = after if after == "-" else f"({after}"
        with _translated():
            rows = self.client.xpending_range(
                self.key(stream), group, min=start, max="+", count=count, consumername=consumer
            )
        return [_text(r["message_id"]) for r in rows]

    def claim(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> list[Message]:
        """XCLAIM the given pending ids for this consumer now, whatever their idle time.
        Entries deleted from the stream come back as tombstones (Redis 6) or not at all (7)."""
        if not ids:
            return []
        with _translated():
            entries = self.client.xclaim(self.key(stream), group, consumer, min_idle_time=0, message_ids=list(ids))
        found = {_text(i): (f or None) for i, f in entries}
        return [Message(stream, i, found.get(i)) for i in ids]

    def delivery_counts(self, stream: str, group: str, ids: Sequence[str]) -> dict[str, int]:
        """How many times each pending id has been delivered (XPENDING, one call per range)."""
        if not ids:
            return {}
        ordered = sorted(ids, key=_id_key)
        with _translated():
            rows = self.client.xpending_range(
                self.key(stream), group, min=ordered[0], max=ordered[-1], count=max(len(ids) * 2, 100)
            )
        wanted = set(ids)
        return {_text(r["message_id"]): r["times_delivered"] for r in rows if _text(r["message_id"]) in wanted}

    def ack(self, group: str, ids_by_stream: dict[str, list[str]]) -> None:
        """XACK the ids, one command per stream, one round trip in all."""
        ids_by_stream = {s: i for s, i in ids_by_stream.items() if i}
        if not ids_by_stream:
            return
        with _translated():
            pipe = self.client.pipeline(transaction=False)
            for stream, ids in ids_by_stream.items():
                pipe.xack(self.key(stream), group, *ids)
            pipe.execute()

    # --- retries ----------------------------------------------------------------------------

    def schedule_retries(self, group: str, due: dict[tuple[str, str], float]) -> None:
        """Remember (in Redis, so a restart keeps it) when each failed message is due again."""
        if not due:
            return
        with _translated():
            self.client.zadd(self._retry_key(group), {f"{s}|{i}": t for (s, i), t in due.items()})

    def pop_due_retries(self, group: str, *, now: float, limit: int) -> list[tuple[str, str]]:
        with _translated():
            members = self._pop_due(keys=[self._retry_key(group)], args=[now, limit])
        return [tuple(_text(m).rsplit("|", 1)) for m in members]  # type: ignore[misc]

    def next_retry_at(self, group: str) -> float | None:
        with _translated():
            first = self.client.zrange(self._retry_key(group), 0, 0, withscores=True)
        return first[0][1] if first else None

    def scheduled_retries(self, group: str, messages: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if not messages:
            return set()
        with _translated():
            scores = self.client.zmscore(self._retry_key(group), [f"{s}|{i}" for s, i in messages])
        return {m for m, score in zip(messages, scores, strict=True) if score is not None}

    def _failures_key(self, group: str) -> str:
        return self.key(f"eventbus:first-failure:{group}")

    def note_first_failures(self, group: str, messages: Sequence[tuple[str, str]], at: float) -> None:
        """Remember when each message first failed (kept if already known)."""
        if not messages:
            return
        with _translated():
            pipe = self.client.pipeline(transaction=False)
            for s, i in messages:
                pipe.hsetnx(self._failures_key(group), f"{s}|{i}", at)
            pipe.execute()

    def first_failures(self, group: str, messages: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
        if not messages:
            return {}
        with _translated():
            values = self.client.hmget(self._failures_key(group), [f"{s}|{i}" for s, i in messages])
        return {m: float(v) for m, v in zip(messages, values, strict=True) if v is not None}

    def forget_failures(self, group: str, messages: Sequence[tuple[str, str]]) -> None:
        if messages:
            with _translated():
                self.client.hdel(self._failures_key(group), *[f"{s}|{i}" for s, i in messages])

    def retry_count(self, group: str) -> int:
        with _translated():
            return self.client.zcard(self._retry_key(group))

    # --- dead letters -----------------------------------------------------------------------

    def dead_letter(self, group: str, fields: dict[str, str]) -> str:
        """Copy a dead message to the group's dead-letter stream (bounded, approximate MAXLEN)."""
        maxlen = settings.EVENTBUS["DEADLETTER_STREAM_MAXLEN"]
        with _translated():
            entry = self.client.xadd(self.key(self.deadletter_stream(group)), fields, maxlen=maxlen, approximate=True)
        return _text(entry)

    def replay(self, group: str, fields: Fields | dict[str, str]) -> str:
        with _translated():
            entry = self.client.xadd(self.key(self.replay_stream(group)), fields)
        return _text(entry)

    # --- housekeeping -----------------------------------------------------------------------

    def trim_acknowledged(self, stream: str) -> int:
        """Trim entries every group has acknowledged, never one still pending or undelivered.

        XTRIM MINID with the oldest id any group still needs; `~` lets Redis trim whole nodes
        only, so it may keep a few more entries, never fewer. A stream without groups is left
        alone (nobody has said what it still needs).
        """
        key = self.key(stream)
        with _translated():
            try:
                groups = self.client.xinfo_groups(key)
            except redis.ResponseError as exc:
                if "no such key" in str(exc):
                    return 0
                raise
            if not groups:
                return 0
            pipe = self.client.pipeline(transaction=False)
            for g in groups:
                pipe.xpending(key, g["name"])
            summaries = pipe.execute()
            needed = []
            for g, summary in zip(groups, summaries, strict=True):
                if summary["pending"]:
                    needed.append(_text(summary["min"]))
                else:
                    needed.append(_next_id(_text(g["last-delivered-id"])))
            return self.client.xtrim(key, minid=min(needed, key=_id_key), approximate=True)

    def remove_idle_consumers(self, stream: str, group: str, *, idle_ms: int, keep: str = "") -> list[str]:
        """Delete consumers idle longer than idle_ms that hold no pending message (deleting one
        with pending entries would orphan them, so those are left for reclaim)."""
        removed = []
        with _translated():
            try:
                rows = self.client.xinfo_consumers(self.key(stream), group)
            except redis.ResponseError:
                return []
            for row in rows:
                name = _text(row["name"])
                if name != keep and row["pending"] == 0 and row["idle"] >= idle_ms:
                    self.client.xgroup_delconsumer(self.key(stream), group, name)
                    removed.append(name)
        return removed

    # --- outbox wake-up ---------------------------------------------------------------------

    def wake_channel(self) -> str:
        return self.key("eventbus:outbox-wakeup")

    def notify_outbox(self) -> None:
        """Tell the relay that outbox rows were committed. Best effort: the relay also polls."""
        with _translated():
            self.client.publish(self.wake_channel(), b"1")

    def subscribe_wakeups(self) -> Wakeups:
        return Wakeups(self)

    # --- heartbeats (eventbus.heartbeats) ---------------------------------------------------

    def heartbeat_set(self, index: str, key: str, name: str, value: str, *, ttl_s: int, now: float) -> None:
        """Store a process's beat for ttl_s seconds and list it in the index, in one round trip."""
        with _translated():
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.key(key), value, ex=ttl_s)
            pipe.zadd(self.key(index), {name: now + ttl_s})
            pipe.execute()

    def heartbeat_delete(self, index: str, key: str, name: str) -> None:
        with _translated():
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.key(key))
            pipe.zrem(self.key(index), name)
            pipe.execute()

    def hash_increments(self, increments: dict[str, dict[str, int]], *, ttl_s: int) -> None:
        """HINCRBY every field of every hash and give each hash ttl_s to live, in one round trip."""
        with _translated():
            pipe = self.client.pipeline(transaction=False)
            for key, fields in increments.items():
                for field, n in fields.items():
                    pipe.hincrby(self.key(key), field, n)
                pipe.expire(self.key(key), ttl_s)
            pipe.execute()

    def hashes(self, keys: Sequence[str]) -> list[dict[str, int]]:
        """HGETALL of each hash (counts), in one round trip; {} for a missing one."""
        with _translated():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(self.key(key))
            replies = pipe.execute()
        return [{_text(f): int(v) for f, v in reply.items()} for reply in replies]

    def heartbeats(self, index: str, key_of: Callable[[str], str], *, now: float) -> list[bytes]:
        """The beats that have not expired (expired names are dropped from the index)."""
        with _translated():
            self.client.zremrangebyscore(self.key(index), "-inf", now)
            names = [_text(n) for n in self.client.zrange(self.key(index), 0, -1)]
            if not names:
                return []
            values = self.client.mget([self.key(key_of(n)) for n in names])
        return [v for v in values if v is not None]


class Wakeups:
    """The relay's subscription to outbox wake-ups."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._pubsub = transport._make_client(socket_timeout=None).pubsub(ignore_subscribe_messages=True)
        with _translated():
            self._pubsub.subscribe(transport.wake_channel())

    def wait(self, timeout: float) -> bool:
        """Wait up to timeout seconds for a wake-up; swallow any that queued up meanwhile."""
        woken = False
        with _translated():
            message = self._pubsub.get_message(timeout=timeout)
            while message is not None:
                woken = woken or message.get("type") == "message"
                message = self._pubsub.get_message(timeout=0)
        return woken

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pubsub.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"


# --- the process-wide transport ----------------------------------------------------------------

_lock = threading.Lock()


@functools.cache
def _transport(url: str, prefix: str, publish_timeout_s: float) -> Transport:
    return Transport(url, prefix=prefix, publish_timeout_s=publish_timeout_s)


def get_transport() -> Transport:
    """The transport for REDIS_URL (or the embedded server) and the configured key prefix."""
    conf = settings.EVENTBUS
    with _lock:
        return _transport(redis_url(), conf["KEY_PREFIX"], conf.get("PUBLISH_TIMEOUT_S", 0.25))


def reset_transport() -> None:
    """Forget the process's transport (settings changed): the next use connects afresh, and
    breakers opened by the old one close."""
    with _lock:
        _transport.cache_clear()
        for breaker in Breaker.instances:
            breaker.open_until = 0.0


class Breaker:
    """After a failure, skip further attempts for a moment, so an outage costs a process one
    failed connection per second, not one per request."""

    instances: ClassVar[list[Breaker]] = []

    def __init__(self, what: str, pause_s: float = 1.0) -> None:
        self.what = what
        self.pause_s = pause_s
        self.open_until = 0.0
        Breaker.instances.append(self)

    def call(self, fn: object, *errors: type[BaseException]) -> bool:
        """Run fn unless the breaker is open; True if it ran and did not raise one of `errors`
        (any Exception if none given), which are logged, not raised."""
        now = time.monotonic()
        if now < self.open_until:
            return False
        try:
            fn()  # type: ignore[operator]
        except Exception as exc:
            if errors and not isinstance(exc, errors):
                raise
            self.open_until = now + self.pause_s
            log.warning("%s: %s", self.what, exc)
            return False
        return True


_wake_breaker = Breaker("could not wake the outbox relay (it will poll instead)")


class _WakeupSender:
    """Publishes outbox wake-ups from a background thread, so a committing request never waits
    on Redis, and a burst of commits costs one PUBLISH, not one each."""

    def __init__(self) -> None:
        self._due = threading.Event()
        self._owner_pid = 0  # the thread does not survive a fork (gunicorn workers)

    def request(self) -> None:
        if self._owner_pid != os.getpid():
            with _lock:
                if self._owner_pid != os.getpid():
                    self._due = threading.Event()
                    threading.Thread(target=self._run, args=(self._due,), name="outbox-wakeup", daemon=True).start()
                    self._owner_pid = os.getpid()
        self._due.set()

    def _run(self, due: threading.Event) -> None:
        while True:
            due.wait()
            due.clear()
            _wake_breaker.call(lambda: get_transport().notify_outbox())


_wakeup_sender = _WakeupSender()


def wake_relay() -> None:
    """Ask for an outbox wake-up to be published; never raises, never blocks (called after
    commit). Best effort: the relay also polls."""
    _wakeup_sender.request()


def connect_signals() -> None:
    from django.core.signals import setting_changed

    def _reset(*, setting: str, **kwargs: object) -> None:
        if setting in ("REDIS_URL", "EVENTBUS"):
            reset_transport()

    setting_changed.connect(_reset, weak=False, dispatch_uid="eventbus.transport.reset")
