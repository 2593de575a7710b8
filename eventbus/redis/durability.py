"""What the configured Redis keeps through a crash, said in one line when a process starts.

This system needs nothing durable from Redis: orders are committed to the database before the
web answers, and every event is in the outbox, which publishes again what Redis loses (see
eventbus.store.recovery). What a Redis that forgets costs is time (events published again, rate limits
and heartbeats reset), so the line says plainly what the server keeps and what it is used for.
"""

from __future__ import annotations

import logging

from eventbus.redis.transport import get_transport

__all__ = ["describe", "say_what_redis_keeps"]

log = logging.getLogger("eventbus.redis")

RELIED_ON_FOR = (
    "events on their way (the outbox publishes again whatever Redis loses), rate limits, heartbeats and "
    "consumer leases; never for orders, which are committed to the database before the web answers"
)


def describe(config: dict[str, str] | None) -> str:
    """What a Redis with this CONFIG GET reply (None: not allowed) keeps through a crash."""
    if config is None:
        return "unknown (CONFIG GET is not allowed on this server)"
    appendonly, fsync, save = config.get("appendonly"), config.get("appendfsync"), config.get("save", "")
    if appendonly == "yes":
        return {
            "always": "every write: appendonly yes, appendfsync always",
            "everysec": "all but the last second of writes: appendonly yes, appendfsync everysec",
        }.get(fsync or "", f"what the OS wrote to disk: appendonly yes, appendfsync {fsync}")
    if save.strip():
        return f"what its last snapshot held: appendonly no, save {save!r}"
    return "nothing: appendonly no and no snapshots, a restart comes back empty"


def say_what_redis_keeps(role: str) -> None:
    """Log one line, at start, about the configured Redis (never raises)."""
    try:
        client = get_transport().client
        try:
            config: dict[str, str] | None = {}
            for pattern in ("appendonly", "appendfsync", "save"):
                reply = client.config_get(pattern)
                config.update({str(k): str(v) for k, v in reply.items()})  # type: ignore[union-attr]
        except Exception as exc:
            if "connect" in type(exc).__name__.lower() or "timeout" in type(exc).__name__.lower():
                raise
            config = None
        kept = describe(config)
    except Exception as exc:  # noqa: BLE001 - Redis does not answer now: the process says so later
        kept = f"unknown (Redis does not answer: {type(exc).__name__})"
    log.info("%s: Redis keeps through a crash %s; this system relies on it for %s", role, kept, RELIED_ON_FOR)
