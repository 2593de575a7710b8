"""What a Redis Cluster asks of the Redis adapter (eventbus.redis_streams.Transport has
ClusterStreams' methods; on one server none of this runs).

- Publishing: the entries of one publish are grouped by the master owning their slot and sent to
  each on a connection of its own: the XADDs, a wake-up per stream (SPUBLISH) and, with
  WAIT_REPLICAS, WAIT, in one round trip. WAIT counts the writes of its own connection, so it
  must follow them on the same one; a cluster pipeline would send it to any node.
- Reading: XREADGROUP takes keys of one slot only. A consumer whose streams share a slot blocks
  on them as on one server; one whose streams spread over slots (partitions on several masters)
  reads each slot without blocking, and when nothing is new waits on its streams' wake-up
  channels (sharded pub/sub: each channel lives on the master of its stream) until one fires or
  the block ends. It never sleep-polls; a lost wake-up costs at most one block.
- Slots: keys that one script or transaction touches share a slot through a hash tag
  (colocate), and a stream's wake-up channel shares its stream's (wake_channel).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Sequence

import redis
from redis.crc import key_slot

from eventbus.redis_client import TransportUnavailable, make_client, node_url, raw_reply, text, translated

__all__ = ["ClusterStreams", "ShardedSubscription", "colocate", "hash_tag", "slot", "wake_channel"]


def hash_tag(key: str) -> str | None:
    """The part of the key Redis Cluster hashes if it is not the whole key: what is between the
    first `{` and the next `}`, when that is not empty."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1 : end] if start >= 0 and end > start + 1 else None


def slot(key: str) -> int:
    return key_slot(key.encode())


def wake_channel(stream_key: str) -> str:
    """The sharded pub/sub channel that tells a stream's readers it has new entries: in the
    stream's slot, so its master publishes it in the round trip of the XADDs."""
    return f"{stream_key}:wake" if hash_tag(stream_key) else f"{{{stream_key}}}:wake"


def colocate(key: str, anchor: str) -> str:
    """`key`, tagged to share the slot of `anchor` (unchanged if it already does)."""
    tag = hash_tag(anchor) or anchor
    if hash_tag(key) == tag or slot(key) == slot(anchor):
        return key
    if hash_tag(key) is not None:
        raise ValueError(f"{key!r} has a hash tag of its own; it cannot share the slot of {anchor!r}")
    return f"{key}{{{tag}}}"


class ShardedSubscription:
    """Sharded pub/sub (SSUBSCRIBE) to channels anywhere in a cluster: each master's channels on
    a connection of its own, read by a thread that raises one flag. Same use as
    eventbus.redis_client.Subscription: `wait(timeout)` returns True when a message came, and
    raises TransportUnavailable once a connection broke (subscribe again)."""

    def __init__(
        self, cluster: redis.RedisCluster, url: str, channels: Iterable[str], client_name: str | None = None
    ) -> None:
        self.channels = tuple(sorted(set(channels)))
        self.broken: str | None = None
        self._fired = threading.Event()
        self._closed = threading.Event()
        by_node: dict[tuple[str, int], list[str]] = {}
        with translated():
            for channel in self.channels:
                node = cluster.get_node_from_key(channel)
                by_node.setdefault((node.host, node.port), []).append(channel)
        self._pubsubs = []
        try:
            for (host, port), names in by_node.items():
                pubsub = make_client(node_url(url, host, port), socket_timeout=None, client_name=client_name).pubsub()
                with translated():
                    for one_slot in {slot(n): [m for m in names if slot(m) == slot(n)] for n in names}.values():
                        pubsub.ssubscribe(*one_slot)  # one SSUBSCRIBE per slot
                self._pubsubs.append(pubsub)
        except BaseException:
            self.close()
            raise
        for pubsub in self._pubsubs:
            threading.Thread(target=self._listen, args=(pubsub,), name="eventbus-wakeups", daemon=True).start()

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        try:
            while not self._closed.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                kind = text(message["type"])
                if kind == "smessage":
                    self._fired.set()
                elif kind == "sunsubscribe":  # the slot moved to another master
                    raise TransportUnavailable(f"wake-up channel {text(message['channel'])} moved")
        except Exception as exc:  # noqa: BLE001 - any failure ends this connection: say so, read
            if not self._closed.is_set():
                self.broken = str(exc) or type(exc).__name__
                self._fired.set()
        finally:
            with contextlib.suppress(Exception):
                pubsub.close()

    def wait(self, timeout: float) -> bool:
        fired = self._fired.wait(timeout)
        self._fired.clear()
        if self.broken:  # as a plain subscription whose connection dropped: subscribe again
            raise TransportUnavailable(f"wake-ups lost: {self.broken}")
        return fired

    def close(self) -> None:
        self._closed.set()
        for pubsub in getattr(self, "_pubsubs", ()):
            with contextlib.suppress(Exception):
                pubsub.connection and pubsub.connection.disconnect()  # type: ignore[func-returns-value]


class ClusterStreams:
    """Transport's cluster side. Uses the Transport's `client` (a redis.RedisCluster), `url`,
    `key`, `publish_timeout_s`, `wait_replicas` and `_messages`."""

    client: redis.RedisCluster
    url: str
    publish_timeout_s: float
    wait_replicas: int
    _client_name: str | None

    def key(self, name: str) -> str:
        raise NotImplementedError

    def _messages(self, reply: object) -> list:
        raise NotImplementedError

    def _cluster_init(self) -> None:
        self._node_clients: dict[tuple[str, bool], redis.Redis] = {}
        self._wakers: dict[tuple[str, str], ShardedSubscription] = {}
        self._cluster_lock = threading.Lock()

    def _cluster_close(self) -> None:
        for client in self._node_clients.values():
            client.close()
        for waker in self._wakers.values():
            waker.close()

    def _node_client(self, node: redis.cluster.ClusterNode, *, prompt: bool) -> redis.Redis:
        """A plain client of one master (its own pool), for what must stay on one connection."""
        client = self._node_clients.get((node.name, prompt))
        if client is None:
            timeout = self.publish_timeout_s if prompt else 10.0
            client = make_client(
                node_url(self.url, node.host, node.port), socket_timeout=timeout, connect_timeout=min(timeout, 2.0),
                client_name=self._client_name,
            )  # fmt: skip
            client.set_response_callback("XAUTOCLAIM", raw_reply)
            with self._cluster_lock:
                client = self._node_clients.setdefault((node.name, prompt), client)
        return client

    def _refresh_slots(self) -> None:
        """Read the slot map again (after a node failed or a slot moved): best effort."""
        with contextlib.suppress(Exception):
            self.client.nodes_manager.initialize()

    def _publish_by_node(self, entries: Sequence[tuple[str, object]], *, prompt: bool, wait_ms: int) -> list[str]:
        """XADD each entry on its stream's master, with a wake-up per stream and WAIT after them
        (see the module docstring). TransportUnavailable if a master did not answer, a slot
        moved, or too few replicas confirmed; entries already added stay (the caller publishes
        them again, and consumers drop the repeats by event id)."""
        keys = [self.key(stream) for stream, _ in entries]
        by_node: dict[str, tuple[redis.cluster.ClusterNode, list[int]]] = {}
        with translated():
            for i, key in enumerate(keys):
                node = self.client.get_node_from_key(key)
                by_node.setdefault(node.name, (node, []))[1].append(i)
        ids = [""] * len(keys)
        for node, positions in by_node.values():
            try:
                with translated():
                    pipe = self._node_client(node, prompt=prompt).pipeline(transaction=False)
                    for i in positions:
                        pipe.xadd(keys[i], entries[i][1])
                    for channel in dict.fromkeys(wake_channel(keys[i]) for i in positions):
                        pipe.execute_command("SPUBLISH", channel, b"1")
                    if self.wait_replicas:
                        pipe.wait(self.wait_replicas, max(1, wait_ms))
                    replies = pipe.execute()
            except TransportUnavailable:
                self._refresh_slots()
                raise
            if self.wait_replicas and replies[-1] < self.wait_replicas:
                raise TransportUnavailable(
                    f"WAIT: {replies[-1]} of the {self.wait_replicas} replica(s) WAIT_REPLICAS asks for confirmed "
                    f"the entries on {node.name} within {wait_ms} ms"
                )
            for i, entry_id in zip(positions, replies, strict=False):
                ids[i] = text(entry_id)
        return ids

    def _wake(self, key: str, message: bytes = b"1") -> None:
        """SPUBLISH on the master of the channel's slot."""
        try:
            with translated():
                self._node_client(self.client.get_node_from_key(key), prompt=False).execute_command(
                    "SPUBLISH", key, message
                )
        except TransportUnavailable:
            self._refresh_slots()
            raise

    def _waker(self, owner: tuple[str, str], keys: Iterable[str]) -> ShardedSubscription:
        """The wake-up subscription of one reader (group, consumer) on these streams: kept while
        its streams stay the same, made anew when they change or a connection broke."""
        channels = tuple(sorted({wake_channel(k) for k in keys}))
        waker = self._wakers.get(owner)
        if waker is None or waker.channels != channels or waker.broken:
            if waker is not None:
                waker.close()
                self._refresh_slots()
            waker = self._wakers[owner] = ShardedSubscription(self.client, self.url, channels, self._client_name)
        return waker

    def _read_slots(
        self, group: str, consumer: str, ids: dict[str, str], *, count: int, block_ms: int | None
    ) -> list | None:
        """XREADGROUP slot by slot (see the module docstring); None if the streams share one slot
        (the caller blocks on them as on one server). Each slot returns up to `count`."""
        by_slot: dict[int, dict[str, str]] = {}
        for stream, entry_id in ids.items():
            key = self.key(stream)
            by_slot.setdefault(slot(key), {})[key] = entry_id
        if len(by_slot) <= 1:
            return None
        waker = self._waker((group, consumer), (k for keys in by_slot.values() for k in keys)) if block_ms else None
        messages = self._read_each(group, consumer, by_slot, count)
        if messages or waker is None:
            return messages
        try:
            fired = waker.wait(block_ms / 1000)
        except TransportUnavailable:
            fired = True  # read: the next read subscribes anew (see _waker)
        return self._read_each(group, consumer, by_slot, count) if fired else []

    def _read_each(self, group: str, consumer: str, by_slot: dict[int, dict[str, str]], count: int) -> list:
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for streams in by_slot.values():
                pipe.xreadgroup(group, consumer, streams, count=count)
            replies = pipe.execute()
        return [m for reply in replies for m in self._messages(reply)]
