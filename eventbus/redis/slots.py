"""Redis Cluster's slots and its sharded pub/sub, for the Redis adapter (eventbus.redis.cluster):
which slot a key hashes to, the wake-up channel that shares a stream's slot, and a subscription
to channels on several masters at once."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable

import redis
from redis.crc import key_slot

from eventbus.redis.client import TransportUnavailable, make_client, node_url, text, translated

__all__ = ["ShardedSubscription", "hash_tag", "slot", "wake_channel"]


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


class ShardedSubscription:
    """Sharded pub/sub (SSUBSCRIBE) to channels anywhere in a cluster: each master's channels on
    a connection of its own, read by a thread that raises one flag. Same use as
    eventbus.redis.client.Subscription: `wait(timeout)` returns True when a message came, and
    raises TransportUnavailable once a connection broke (subscribe again)."""

    PING_S = 15.0

    def __init__(
        self, cluster: redis.RedisCluster, url: str, channels: Iterable[str], client_name: str | None = None
    ) -> None:
        self.channels = tuple(sorted(set(channels)))
        self.broken: str | None = None
        self._fired = threading.Event()
        self._closed = threading.Event()
        # master -> slot -> channels: one connection per master, one SSUBSCRIBE per slot
        by_node: dict[tuple[str, int], dict[int, list[str]]] = {}
        with translated():
            for channel in self.channels:
                node = cluster.get_node_from_key(channel)
                by_node.setdefault((node.host, node.port), {}).setdefault(slot(channel), []).append(channel)
        self._pubsubs = []
        try:
            for (host, port), by_slot in by_node.items():
                pubsub = make_client(node_url(url, host, port), socket_timeout=None, client_name=client_name).pubsub()
                with translated():
                    for names in by_slot.values():
                        pubsub.ssubscribe(*names)
                self._pubsubs.append(pubsub)
        except BaseException:
            self.close()
            raise
        for pubsub in self._pubsubs:
            threading.Thread(target=self._listen, args=(pubsub,), name="eventbus-wakeups", daemon=True).start()

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        """Raise the flag per message; PING every PING_S, and call the connection broken when
        the node said nothing for 3 x PING_S (a half-open connection never fails by itself)."""
        heard = next_ping = time.monotonic()
        try:
            while not self._closed.is_set():
                message = pubsub.get_message(timeout=1.0)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    kind = text(message["type"])
                    if kind == "smessage":
                        self._fired.set()
                    elif kind == "sunsubscribe":  # the slot moved to another master
                        raise TransportUnavailable(f"wake-up channel {text(message['channel'])} moved")
                if now >= next_ping:
                    pubsub.ping()
                    next_ping = now + self.PING_S
                if now - heard > 3 * self.PING_S:
                    raise TransportUnavailable(f"no answer for {3 * self.PING_S:g} s")
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
