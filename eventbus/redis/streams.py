"""The Redis Streams adapter: streams, consumer groups, reads, claims and acknowledgements.

Everything above it speaks in logical stream names (`orders`), consumer groups and message ids;
this module adds the key prefix and keeps the traps of Redis Streams away from callers: a
blocking XREADGROUP runs on a client whose socket timeout outlasts the block, XAUTOCLAIM is
stepped with its cursor, and streams are trimmed only below what every group has acknowledged.
Creating, inspecting and trimming groups is eventbus.redis.groups', what processes record for
operators (heartbeats, figures over time) eventbus.redis.records'; the failure records of the
groups are `transport.retries` (eventbus.redis.retry_store).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from django.conf import settings

from eventbus.redis.client import (
    Subscription,
    TransportUnavailable,
    is_cluster,
    make_client,
    raw_reply,
    text,
    translated,
)  # fmt: skip
from eventbus.redis.cluster import ClusterStreams
from eventbus.redis.groups import GroupAdmin, GroupInfo
from eventbus.redis.leases import LeaseStore
from eventbus.redis.records import ProcessRecords
from eventbus.redis.retry_store import RetryStore
from eventbus.redis.slots import ShardedSubscription, wake_channel

__all__ = ["PUBLISHED_SET", "Fields", "GroupInfo", "Message", "Transport"]

Fields = dict[bytes, bytes]

# Event ids published on commit whose outbox rows the relay has yet to delete.
PUBLISHED_SET = "eventbus:published"


@dataclass(frozen=True, slots=True)
class Message:
    """One stream entry as a consumer sees it. `fields` is None for a tombstone: an entry still
    pending in the group whose data was deleted from the stream."""

    stream: str
    id: str
    fields: Fields | None


class Transport(GroupAdmin, ProcessRecords, LeaseStore, ClusterStreams):
    """A connection to one Redis (or a Redis Cluster: eventbus.redis.cluster) with the stream
    operations the relay and consumers need.

    Thread-safe (redis-py clients pool their connections); one per process: get_transport().
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        client_name: str | None = None,
        publish_timeout_s: float = 0.25,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.publish_timeout_s = publish_timeout_s
        self._client_name = client_name
        self.cluster = is_cluster(url)
        self._cluster_init()
        self.client = make_client(url, socket_timeout=10.0, client_name=client_name)
        # Publishing right after a commit happens while a client waits for its answer: give up
        # soon (the relay publishes what this could not) rather than hold the request.
        self._prompt = make_client(
            url, socket_timeout=publish_timeout_s, connect_timeout=publish_timeout_s, client_name=client_name
        )
        if not self.cluster:  # (a cluster's masters have clients of their own: _node_client)
            self.client.set_response_callback("XAUTOCLAIM", raw_reply)
        self._blocking: dict[int, redis.Redis] = {}
        self.retries = RetryStore(self.client, self.key)

    def close(self) -> None:
        """Close every connection of this transport (its pools reconnect if it is used again)."""
        self.client.close()
        self._prompt.close()
        for client in self._blocking.values():
            client.close()
        self._cluster_close()

    # --- names ------------------------------------------------------------------------------

    def key(self, name: str) -> str:
        return self.prefix + name

    def _name(self, key: bytes | str) -> str:
        key = text(key)
        return key[len(self.prefix) :] if self.prefix and key.startswith(self.prefix) else key

    @staticmethod
    def replay_stream(group: str) -> str:  # replayed dead letters, to one group only
        return f"eventbus:replay:{group}"

    @staticmethod
    def deadletter_stream(group: str) -> str:
        return f"eventbus:dead:{group}"

    # --- health and pub/sub -----------------------------------------------------------------

    def ping(self, *, timeout_s: float | None = None) -> None:
        """PING Redis; TransportUnavailable if it does not answer. With timeout_s, on a
        connection of its own that waits no longer than that, so a stalled server cannot hold
        the caller (a health check) for the shared client's timeouts."""
        with translated():
            if timeout_s is None:
                self.client.ping()
                return
            client = make_client(self.url, socket_timeout=timeout_s, connect_timeout=timeout_s)
            try:
                client.ping()
            finally:
                client.close()

    def broadcast(self, channel: str, message: bytes = b"1") -> None:
        """PUBLISH to a pub/sub channel (a hint to whoever listens; nothing is kept)."""
        if self.cluster:  # sharded: one master carries it, not every node
            return self._wake(self.key(channel), message)
        with translated():
            self.client.publish(self.key(channel), message)

    def subscribe(self, channel: str) -> Subscription | ShardedSubscription:
        """Listen on a pub/sub channel, on a connection of its own without a read timeout."""
        if self.cluster:
            return ShardedSubscription(self.client, self.url, [self.key(channel)], self._client_name)
        return Subscription(
            make_client(self.url, socket_timeout=None, client_name=self._client_name), self.key(channel)
        )

    # --- publishing -------------------------------------------------------------------------

    def publish(
        self, entries: Sequence[tuple[str, Fields | dict[str, str]]], *, mark: Sequence[str] = (), prompt: bool = False
    ) -> list[str]:
        """XADD every entry in one pipelined round trip, in order, and return the new ids; with
        `mark`, also add those event ids to the published set. With `prompt`, give up after
        EVENTBUS["PUBLISH_TIMEOUT_S"] (someone is waiting).

        With EVENTBUS["WAIT_REPLICAS"], the entries count as published only once that many
        replicas have them (WAIT, in the same round trip): a primary that fails over to a
        replica right after acknowledging them cannot take them along. Too few replicas in
        WAIT_TIMEOUT_MS raises TransportUnavailable, and nothing is marked: the caller keeps its
        rows unpublished and publishes them again later.

        Not transactional: if the connection drops half-way some entries may be on the stream;
        the caller publishes them again and consumers drop the duplicates by event id.
        """
        # Someone waiting (prompt) gives the replicas less than its own timeout. WAIT is sent on
        # the connection of the XADDs (it waits for that connection's writes), so it is asked
        # once: a shortfall publishes the batch anew later (the inbox drops the repeats).
        wait_ms = min(self.wait_timeout_ms, int(self.publish_timeout_s * 800)) if prompt else self.wait_timeout_ms
        if self.cluster:
            return self._publish_by_node(
                entries, mark=mark, mark_key=self.key(PUBLISHED_SET), prompt=prompt, wait_ms=wait_ms
            )
        with translated():
            client = self._prompt if prompt else self.client
            pipe = client.pipeline(transaction=False)
            for stream, fields in entries:
                pipe.xadd(self.key(stream), fields)
            if self.wait_replicas:
                pipe.wait(self.wait_replicas, max(1, wait_ms))
            elif mark:
                pipe.sadd(self.key(PUBLISHED_SET), *mark)
            replies = pipe.execute()
            if self.wait_replicas:
                acked = replies[-1]
                if acked < self.wait_replicas:
                    raise TransportUnavailable(
                        f"WAIT: {acked} of the {self.wait_replicas} replica(s) WAIT_REPLICAS asks for confirmed "
                        f"the entries within {wait_ms} ms"
                    )
                if mark:  # the marks only once the entries are safe
                    client.sadd(self.key(PUBLISHED_SET), *mark)
        return [text(i) for i in replies[: len(entries)]]

    def take_published_marks(self, limit: int) -> list[str]:
        """Take (and remove) up to `limit` event ids that producers published on commit."""
        with translated():
            return [text(i) for i in self.client.spop(self.key(PUBLISHED_SET), limit) or ()]

    def dead_letter(self, group: str, fields: dict[str, str]) -> str:
        """Copy a dead message to the group's dead-letter stream (bounded, approximate MAXLEN)."""
        maxlen = settings.EVENTBUS["DEADLETTER_STREAM_MAXLEN"]
        with translated():
            entry = self.client.xadd(self.key(self.deadletter_stream(group)), fields, maxlen=maxlen, approximate=True)
        return text(entry)

    def replay(self, group: str, fields: Fields | dict[str, str]) -> str:
        """Deliver a message again to one group only, through its replay stream."""
        with translated():
            entry = self.client.xadd(key := self.key(self.replay_stream(group)), fields)
        if self.cluster:  # a consumer reading several slots waits on wake-ups (or its block)
            with contextlib.suppress(TransportUnavailable):
                self._wake(wake_channel(key))
        return text(entry)

    # --- reading ----------------------------------------------------------------------------

    def read(
        self, group: str, consumer: str, ids: dict[str, str], *, count: int, block_ms: int | None
    ) -> list[Message]:
        """XREADGROUP on several streams: per stream `>` for new messages, or an id for this
        consumer's own pending messages after that id. Blocks up to block_ms when none are new."""
        if self.cluster:
            spread = self._read_slots(group, consumer, ids, count=count, block_ms=block_ms)
            if spread is not None:
                return spread
        client = self.client if not block_ms else self._blocking_client(block_ms)
        with translated():
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
            client = self._blocking[minutes] = make_client(
                self.url, socket_timeout=minutes * 60 + 10.0, client_name=self._client_name
            )
        return client

    def _messages(self, reply: object) -> list[Message]:
        out: list[Message] = []
        if isinstance(reply, dict):  # RESP3
            reply = [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
        for key, entries in reply or ():
            stream = self._name(key)
            for entry_id, fields in entries:
                out.append(Message(stream, text(entry_id), fields or None))
        return out

    def autoclaim_ids(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, start: str = "0-0", count: int = 100
    ) -> tuple[str, list[str], list[str]]:
        """One XAUTOCLAIM ... JUSTID step: (next cursor, ids now owned by `consumer`, ids deleted
        from the stream). JUSTID does not count as a delivery, so looking does not use up an
        attempt; the caller XCLAIMs the ids it will process. Loop until the cursor is 0-0."""
        key = self.key(stream)
        command = ("XAUTOCLAIM", key, group, consumer, min_idle_ms, start, "COUNT", count, "JUSTID")
        if self.cluster:  # on the master's own client, which keeps the raw reply
            reply = self._rounds([key], lambda pipe, _: pipe.execute_command(*command))[0][2][0]
        else:
            with translated():
                reply = self.client.execute_command(*command)
        cursor, ids = text(reply[0]), [text(i) for i in reply[1]]
        deleted = [text(i) for i in reply[2]] if len(reply) > 2 else []  # Redis 7 reports them
        return cursor, ids, deleted

    def pending_ids(self, stream: str, group: str, consumer: str, *, after: str = "-", count: int = 100) -> list[str]:
        """Ids pending for one consumer, oldest first, after `after` (XPENDING: not a delivery)."""
        start = after if after == "-" else f"({after}"
        with translated():
            rows = self.client.xpending_range(
                self.key(stream), group, min=start, max="+", count=count, consumername=consumer
            )
        return [text(r["message_id"]) for r in rows]

    def claim(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> list[Message]:
        """XCLAIM the given pending ids for this consumer now, whatever their idle time.
        Entries deleted from the stream come back as tombstones (Redis 6) or not at all (7)."""
        if not ids:
            return []
        with translated():
            entries = self.client.xclaim(self.key(stream), group, consumer, min_idle_time=0, message_ids=list(ids))
        found = {text(i): (f or None) for i, f in entries}
        return [Message(stream, i, found.get(i)) for i in ids]

    def ack(self, group: str, ids_by_stream: dict[str, list[str]]) -> None:  # one round trip
        ids_by_stream = {s: i for s, i in ids_by_stream.items() if i}
        if not ids_by_stream:
            return
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for stream, ids in ids_by_stream.items():
                pipe.xack(self.key(stream), group, *ids)
            pipe.execute()
