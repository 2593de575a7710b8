"""Talking to Redis without redis-py's traps. With the adapter it serves (eventbus.redis.streams,
redis_groups, redis_records, redis_cluster and retry_store), the only code of the project that
imports `redis`.

Clients never resend a command behind the caller's back (a retried XADD would duplicate an
entry), failures become two exceptions a caller can act on (TransportUnavailable,
GroupMissing), and stream entry ids compare as the numbers they are.

A URL `redis+cluster://host:port[,host:port...]` (`rediss+cluster://` for TLS) names a Redis
Cluster: make_client returns redis-py's cluster client (made on first use), which follows MOVED
and ASK itself (the command did not run) and re-reads the slot map after a connection error,
then raises.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

__all__ = [
    "CLUSTER_SCHEMES",
    "GroupMissing",
    "LazyCluster",
    "Subscription",
    "TransportUnavailable",
    "display_url",
    "id_key",
    "is_cluster",
    "make_client",
    "next_id",
    "node_url",
    "raw_reply",
    "text",
    "translated",
]


class TransportUnavailable(Exception):
    """Redis cannot be reached (refused, timed out, loading its data set, read-only)."""


class GroupMissing(Exception):
    """The stream or its consumer group no longer exists (NOGROUP)."""


_ERRORS_UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # a failover in progress
    redis.exceptions.AskError,  # MOVED too: a slot moved under a node client (eventbus.redis.cluster)
    redis.exceptions.SlotNotCoveredError,
    OSError,
)

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn the Redis errors a caller can act on into TransportUnavailable or GroupMissing."""
    try:
        yield
    except redis.ResponseError as exc:
        # Redis 7 ends a blocked XREADGROUP on a deleted stream with UNBLOCKED instead of NOGROUP.
        said = str(exc).rpartition("of pipeline caused error: ")[2]  # a pipeline names the command first
        if said.startswith(("NOGROUP", "UNBLOCKED the stream key no longer exists")):
            raise GroupMissing(str(exc)) from exc
        if isinstance(exc, _ERRORS_UNAVAILABLE):
            raise TransportUnavailable(str(exc)) from exc
        raise
    except _ERRORS_UNAVAILABLE as exc:
        raise TransportUnavailable(str(exc) or exc.__class__.__name__) from exc
    except redis.exceptions.RedisClusterException as exc:
        if "slot" in str(exc).lower() and "cover" not in str(exc).lower():
            raise  # keys of one command in different slots: a bug to see, not an outage
        raise TransportUnavailable(str(exc) or exc.__class__.__name__) from exc  # no node answered


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def _cluster_parts(url: str) -> tuple[str, list[tuple[str, int]]]:
    """(scheme of one node, [(host, port)...]) of a cluster URL; ValueError if it names none."""
    parts = urlsplit(url)
    scheme = "rediss" if parts.scheme == "rediss+cluster" else "redis"
    hosts = parts.netloc.rpartition("@")[2]
    nodes = []
    for address in filter(None, hosts.split(",")):
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "6379")
        nodes.append((host.strip("[]") or "127.0.0.1", int(port)))
    if not nodes:
        raise ValueError(f"{display_url(url)} names no cluster node (host:port[,host:port...])")
    return scheme, nodes


def node_url(url: str, host: str, port: int) -> str:
    """The URL of one node of the cluster `url` names (same credentials, TLS and options)."""
    scheme, _ = _cluster_parts(url)
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 in brackets
    netloc = f"{userinfo}@{address}" if userinfo else address
    return urlunsplit((scheme, netloc, "", parts.query, ""))


def make_client(
    url: str, *, socket_timeout: float | None, connect_timeout: float = 2.0, client_name: str | None = None
) -> redis.Redis:
    """A client that never retries a command and notices a dead peer on a long blocking read."""
    options: dict[str, object] = {}
    if not url.startswith("unix:"):
        options["socket_keepalive"] = True
    if is_cluster(url):
        _, nodes = _cluster_parts(url)
        kwargs = parse_url(node_url(url, *nodes[0]))  # credentials, TLS and options as one node takes them
        if kwargs.pop("connection_class", None) is redis.SSLConnection:
            kwargs["ssl"] = True
        for name in ("host", "port", "db"):
            kwargs.pop(name, None)
        kwargs.update(socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout, client_name=client_name)
        return LazyCluster(
            lambda: redis.RedisCluster(
                startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in nodes],
                retry=Retry(NoBackoff(), 0),  # MOVED and ASK are still followed: the command did not run
                **{**kwargs, **options},
            )
        )  # type: ignore[return-value]
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),  # never resend a command behind our back
        client_name=client_name,
        **options,
    )


class LazyCluster:
    """A redis.RedisCluster made on first use, like a plain client that connects when used: the
    cluster client reads the slot map in its constructor, and a process must start (and say
    "unreachable" in one line) while the cluster is down."""

    def __init__(self, make: Callable[[], redis.RedisCluster]) -> None:
        self._make = make
        self._client: redis.RedisCluster | None = None
        self._lock = threading.Lock()

    def _get(self) -> redis.RedisCluster:
        if self._client is None:
            with self._lock, translated():
                if self._client is None:
                    self._client = self._make()
        return self._client

    def __getattr__(self, name: str) -> object:
        return getattr(self._get(), name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class Subscription:
    """A pub/sub subscription to one channel, on a connection of its own."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        with translated():
            self._pubsub.subscribe(channel)

    def wait(self, timeout: float) -> bool:
        """Wait up to timeout seconds for a message; swallow any that queued up meanwhile.
        True if one came."""
        received = False
        with translated():
            message = self._pubsub.get_message(timeout=timeout)
            while message is not None:
                received = received or message.get("type") == "message"
                message = self._pubsub.get_message(timeout=0)
        return received

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pubsub.close()


def raw_reply(response: object, **options: object) -> object:
    """A response callback that keeps the reply as Redis sent it: for XAUTOCLAIM ... JUSTID,
    whose cursor redis-py's own parser drops."""
    return response


def display_url(url: str) -> str:
    """The URL with any password masked, for messages people read."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def text(value: bytes | str) -> str:
    """What Redis returned (bytes) as text; bytes that are not UTF-8 shown escaped, not lost."""
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable (milliseconds, sequence)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(entry_id: str) -> str:
    """The smallest id after this one."""
    ms, seq = id_key(entry_id)
    return f"{ms}-{seq + 1}"
