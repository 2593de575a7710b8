"""What is in Redis, read directly: stream entries, a group's pending list, the retry schedule."""

from __future__ import annotations

import json

from eventbus.messages.events import Envelope
from eventbus.redis.transport import Transport


def message_id(transport: Transport, envelope: Envelope, stream: str = "orders") -> str:
    """The stream entry id that carries this event."""
    for entry_id, fields in transport.client.xrange(transport.key(stream)):
        if json.loads(fields[b"event"])["event_id"] == str(envelope.event_id):
            return entry_id.decode()
    raise LookupError(f"event {envelope.event_id} is not on stream {stream}")


def entry_ids(transport: Transport, stream: str = "orders") -> list[str]:
    return [entry_id.decode() for entry_id, _ in transport.client.xrange(transport.key(stream))]


def pending(transport: Transport, group: str = "inventory", stream: str = "orders") -> dict[str, str]:
    """Pending entry id -> the consumer holding it."""
    rows = transport.client.xpending_range(transport.key(stream), group, min="-", max="+", count=1000)
    return {r["message_id"].decode(): r["consumer"].decode() for r in rows}


def retry_schedule(transport: Transport, group: str = "inventory") -> dict[str, float]:
    """ "stream|entry id" -> when it is due (epoch seconds), from the group's retry sorted set."""
    rows = transport.client.zrange(transport.key(f"eventbus:retry:{group}"), 0, -1, withscores=True)
    return {member.decode(): due for member, due in rows}
