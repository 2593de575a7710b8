"""Talking to Redis without redis-py's traps. With the adapter it serves (eventbus.redis_streams,
redis_groups, redis_records and retry_store), the only code of the project that imports
`redis`.

Clients never resend a command behind the caller's back (a retried XADD would duplicate an
entry), failures become two exceptions a caller can act on (TransportUnavailable,
GroupMissing), and stream entry ids compare as the numbers they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "GroupMissing",
    "Subscription",
    "TransportUnavailable",
    "display_url",
    "id_key",
    "make_client",
    "next_id",
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
    OSError,
)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn the Redis errors a caller can act on into TransportUnavailable or GroupMissing."""
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


def make_client(
    url: str, *, socket_timeout: float | None, connect_timeout: float = 2.0, client_name: str | None = None
) -> redis.Redis:
    """A client that never retries a command and notices a dead peer on a long blocking read."""
    options: dict[str, object] = {}
    if not url.startswith("unix:"):
        options["socket_keepalive"] = True
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),  # never resend a command behind our back
        client_name=client_name,
        **options,
    )


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
