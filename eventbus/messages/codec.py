"""The wire form of an envelope: compact JSON, the same in the outbox and on the stream.

    {"event_id": "...", "type": "orders.OrderPlaced", "version": 1, "occurred_at": "...",
     "aggregate_type": "order", "aggregate_id": "...", "correlation_id": "...",
     "causation_id": null, "payload": {...}}

Decoding is tolerant where a rolling deploy needs it and strict everywhere else: envelope
fields it does not know are ignored (a newer producer may add some); an older version of an
event is brought to the newest one this process knows through its upcasters; a newer version
raises NewerEventVersion, which the consumer retries until it is upgraded. Anything else it
cannot read is a PermanentError saying why: the message goes to dead letters at once.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from eventbus.messages.events import (
    Envelope,
    Event,
    InvalidEvent,
    MalformedMessage,
    NewerEventVersion,
    UnknownEventType,
    event_class,
)
from eventbus.messages.payloads import dump, load
from eventbus.messages.upcasting import upcast

__all__ = ["EVENT_FIELD", "decode", "decode_message", "encode"]

# The field of a stream entry that holds the envelope.
EVENT_FIELD = b"event"

_TRACE_FIELDS = ("traceparent", "tracestate")
_REQUIRED = ("event_id", "type", "version", "occurred_at", "aggregate_type", "aggregate_id", "payload")


def encode(envelope: Envelope[Event]) -> str:
    """The wire form: compact JSON, UUIDs and Decimals as strings, times in ISO 8601 UTC."""
    data = {
        "event_id": str(envelope.event_id),
        "type": envelope.type,
        "version": envelope.version,
        "occurred_at": envelope.occurred_at.isoformat(),
        "aggregate_type": envelope.aggregate_type,
        "aggregate_id": envelope.aggregate_id,
        "correlation_id": str(envelope.correlation_id),
        "causation_id": str(envelope.causation_id) if envelope.causation_id else None,
        "payload": dump(envelope.payload),
    }
    if envelope.correlation_started_at is not None:  # optional: older consumers ignore it
        data["correlation_started_at"] = envelope.correlation_started_at.isoformat()
    if envelope.trace_context:  # traceparent, tracestate (W3C), when tracing is on
        data.update(envelope.trace_context)
    return json.dumps(data, separators=(",", ":"))


def decode(raw: bytes | str) -> Envelope[Event]:
    """Parse and validate a wire envelope into the newest class this process knows of its type.

    Guarantees: a message this process cannot read now or later raises a PermanentError saying
    why; a newer version of a known event raises NewerEventVersion (not permanent); an older
    one is upcast, and its envelope then says the version it was brought to.
    """
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
    if cls is None:
        raise UnknownEventType(f"unknown event type {type_!r} version {version!r}")
    payload = data["payload"]
    if version != cls.version:
        if version > cls.version:
            raise NewerEventVersion(type_, version, cls.version, _event_id_or_none(data["event_id"]))
        payload = upcast(type_, payload, from_version=version, to_version=cls.version)
    try:
        return Envelope(
            event_id=load(uuid.UUID, data["event_id"], "event_id"),
            type=type_,
            version=cls.version,
            occurred_at=load(dt.datetime, data["occurred_at"], "occurred_at"),
            aggregate_type=load(str, data["aggregate_type"], "aggregate_type"),
            aggregate_id=load(str, data["aggregate_id"], "aggregate_id"),
            correlation_id=load(uuid.UUID, data.get("correlation_id") or data["event_id"], "correlation_id"),
            causation_id=load(uuid.UUID | None, data.get("causation_id"), "causation_id"),
            payload=load(cls, payload, "payload"),
            correlation_started_at=load(
                dt.datetime | None, data.get("correlation_started_at"), "correlation_started_at"
            ),
            trace_context={k: data[k] for k in _TRACE_FIELDS if isinstance(data.get(k), str)} or None,
        )
    except InvalidEvent as exc:
        raise InvalidEvent(f"{type_} v{version}: {exc}") from None


def decode_message(fields: dict[bytes, bytes] | None) -> Envelope[Event]:
    """The envelope a stream entry's fields carry (see decode for what it raises)."""
    raw = (fields or {}).get(EVENT_FIELD)
    if raw is None:
        raise MalformedMessage("message has no 'event' field")
    return decode(raw)


def _event_id_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return None
