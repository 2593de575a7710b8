"""The wire form of an envelope: compact JSON, the same in the outbox and on the stream.

    {"event_id": "...", "type": "orders.OrderPlaced", "version": 1, "occurred_at": "...",
     "aggregate_type": "order", "aggregate_id": "...", "correlation_id": "...",
     "causation_id": null, "payload": {...}}

Decoding refuses what it cannot read with a PermanentError saying why: the message goes to
dead letters at once. Envelope fields it does not know are ignored.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from eventbus.events import Envelope, Event, InvalidEvent, MalformedMessage, UnknownEventType, event_class
from eventbus.payloads import dump, load

__all__ = ["decode", "encode"]

_REQUIRED = ("event_id", "type", "version", "occurred_at", "aggregate_type", "aggregate_id", "payload")


def encode(envelope: Envelope[Event]) -> str:
    """The wire form: compact JSON, UUIDs and Decimals as strings, times in ISO 8601 UTC."""
    return json.dumps(
        {
            "event_id": str(envelope.event_id),
            "type": envelope.type,
            "version": envelope.version,
            "occurred_at": envelope.occurred_at.isoformat(),
            "aggregate_type": envelope.aggregate_type,
            "aggregate_id": envelope.aggregate_id,
            "correlation_id": str(envelope.correlation_id),
            "causation_id": str(envelope.causation_id) if envelope.causation_id else None,
            "payload": dump(envelope.payload),
        },
        separators=(",", ":"),
    )


def decode(raw: bytes | str) -> Envelope[Event]:
    """Parse and validate a wire envelope; every failure is a PermanentError saying why."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessage("message is not a JSON object")
    missing = [f for f in _REQUIRED if f not in data]
    if missing:
        raise MalformedMessage(f"envelope lacks field(s): {', '.join(missing)}")
    type_, version = data["type"], data["version"]
    if not isinstance(type_, str) or not isinstance(version, int) or isinstance(version, bool):
        raise MalformedMessage("envelope 'type' must be a string and 'version' an integer")
    cls = event_class(type_)
    if cls is None or version != cls.version:
        raise UnknownEventType(f"unknown event type {type_!r} version {version!r}")
    try:
        return Envelope(
            event_id=load(uuid.UUID, data["event_id"], "event_id"),
            type=type_,
            version=version,
            occurred_at=load(dt.datetime, data["occurred_at"], "occurred_at"),
            aggregate_type=load(str, data["aggregate_type"], "aggregate_type"),
            aggregate_id=load(str, data["aggregate_id"], "aggregate_id"),
            correlation_id=load(uuid.UUID, data.get("correlation_id") or data["event_id"], "correlation_id"),
            causation_id=load(uuid.UUID | None, data.get("causation_id"), "causation_id"),
            payload=load(cls, data["payload"], "payload"),
        )
    except InvalidEvent as exc:
        raise InvalidEvent(f"{type_} v{version}: {exc}") from None
