"""Typed, versioned events, the registry of their classes, and the envelope that carries them.

An event is a frozen dataclass that declares only its fields. A family base, one per app, fixes
the stream its events are published on, their aggregate type and the prefix of their type name:

    class OrderEvent(Event, stream="orders", aggregate_type="order", prefix="orders"):
        "What the orders app publishes."

    @dataclass(frozen=True)
    class OrderPlaced(OrderEvent):  # type "orders.OrderPlaced", version 1
        order_id: uuid.UUID

A class that names a `prefix` opens a family and is not an event itself. An event may add
`version=2`, `name="..."` (to keep its type name when the class is renamed), its own `stream`
or `aggregate_type`, or `partitioned=False` (one stream even with EVENTBUS_PARTITIONS > 1).
Defining an event registers it under (type, version); a consumer reads every message of a type
into the newest class registered for it (older versions through the upcasters of
eventbus.messages.upcasting). The wire form is eventbus.messages.codec's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, ClassVar, Generic, TypeVar

from eventbus.runtime import partitions, tracing

__all__ = [
    "Envelope",
    "Event",
    "InvalidEvent",
    "MalformedMessage",
    "NewerEventVersion",
    "PermanentError",
    "UnknownEventType",
    "event_class",
    "event_classes",
]


class PermanentError(Exception):
    """An error that retrying cannot fix: the message goes to dead letters at once."""


class MalformedMessage(PermanentError):
    """The message is not a JSON envelope with the required fields."""


class UnknownEventType(PermanentError):
    """No event class is registered for this type, or no upcaster reaches it from this version."""


class InvalidEvent(PermanentError):
    """The payload does not match the event's schema."""


class NewerEventVersion(Exception):
    """The message carries a newer version of a known event than this process knows: a producer
    was upgraded before this consumer. Not permanent: the consumer retries it until it is
    upgraded too (up to EVENTBUS["NEWER_VERSION_WAIT_S"])."""

    def __init__(self, type_: str, version: int, known: int, event_id: uuid.UUID | None = None) -> None:
        super().__init__(f"{type_} version {version} is newer than this consumer knows (version {known})")
        self.type = type_
        self.version = version
        self.known = known
        self.event_id = event_id


_BY_VERSION: dict[tuple[str, int], type[Event]] = {}
_NEWEST: dict[str, type[Event]] = {}
_PARTITIONED: dict[str, bool] = {}  # stream -> whether its events are partitioned

# What a family base or an event may say about itself, as keywords of its class statement.
_DECLARED = ("type", "version", "stream", "aggregate_type", "partitioned")


class Event:
    """Base of all events (see the module docstring for how to declare one)."""

    type: ClassVar[str]
    version: ClassVar[int]
    stream: ClassVar[str]
    aggregate_type: ClassVar[str]
    type_prefix: ClassVar[str | None] = None
    # Split over EVENTBUS_PARTITIONS partition streams by aggregate id (eventbus.runtime.partitions).
    partitioned: ClassVar[bool] = True

    def __init_subclass__(
        cls,
        *,
        prefix: str | None = None,
        name: str | None = None,
        version: int = 1,
        stream: str | None = None,
        aggregate_type: str | None = None,
        partitioned: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        written = [attr for attr in _DECLARED if attr in cls.__dict__]
        if written:
            # A class attribute would be silently replaced below: say how to declare it instead.
            raise TypeError(
                f"{cls.__qualname__}: give {', '.join(written)} as class keywords, e.g. class X(Base, version=2)"
            )
        if stream is not None:
            cls.stream = stream
        if partitioned is not None:
            cls.partitioned = partitioned
        if aggregate_type is not None:
            cls.aggregate_type = aggregate_type
        if prefix is not None:
            cls.type_prefix = prefix
            return  # a family base
        if cls.type_prefix is None:
            return  # an intermediate class outside any family
        cls.type = f"{cls.type_prefix}.{name or cls.__name__}"
        cls.version = version
        _register(cls)


def _register(cls: type[Event]) -> None:
    key = (cls.type, cls.version)
    other = _PARTITIONED.setdefault(cls.stream, cls.partitioned)
    if other != cls.partitioned:
        raise TypeError(
            f"{cls.__qualname__}: the events of stream {cls.stream!r} are all partitioned or all not "
            f"(another says partitioned={other})"
        )
    previous = _BY_VERSION.get(key)
    if previous is not None and previous.__qualname__ != cls.__qualname__:
        raise TypeError(f"event {key} is registered twice: {previous!r} and {cls!r}")
    _BY_VERSION[key] = cls
    newest = _NEWEST.get(cls.type)
    if newest is None or cls.version >= newest.version:
        _NEWEST[cls.type] = cls


def event_class(type_: str) -> type[Event] | None:
    """The newest class registered for this event type (the one consumers decode into), or None."""
    return _NEWEST.get(type_)


def event_classes() -> list[type[Event]]:
    """Every registered event class, every version."""
    return list(_BY_VERSION.values())


E = TypeVar("E", bound=Event)


# slots: an envelope is built per message. Build one with Envelope.new() or Envelope(...), not
# Envelope[X](...), which Python 3.11 refuses for a frozen dataclass with slots.
@dataclasses.dataclass(frozen=True, slots=True)
class Envelope(Generic[E]):
    """An event with its identity and lineage, exactly as it travels through outbox and stream.
    Generic over the event it carries, so a handler of `list[Envelope[OrderPlaced]]` reads
    `e.payload.order_id` with its type."""

    event_id: uuid.UUID
    type: str
    version: int
    occurred_at: dt.datetime
    aggregate_type: str
    aggregate_id: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    payload: E
    # When the piece of work this event belongs to began (the correlation's first event, e.g.
    # the order's placement): how long each stage took since, without reading another app's
    # tables. None in envelopes from before it was carried.
    correlation_started_at: dt.datetime | None = None
    # The W3C trace context (traceparent, tracestate) of the span that caused this event, when
    # tracing is on (eventbus.runtime.tracing): a handler's span continues that trace.
    trace_context: dict[str, str] | None = None

    @classmethod
    def new(
        cls,
        event: E,
        *,
        aggregate_id: str,
        caused_by: Envelope[Any] | None = None,
        correlation_id: uuid.UUID | None = None,
        occurred_at: dt.datetime | None = None,
    ) -> Envelope[E]:
        """A fresh envelope for `event`: a new id; the correlation id, its start and the causation
        of the envelope that caused it, if any (else this event starts the correlation)."""
        event_id = uuid.uuid4()
        if correlation_id is None:
            correlation_id = caused_by.correlation_id if caused_by else event_id
        occurred_at = occurred_at or dt.datetime.now(dt.UTC)
        started_at = (caused_by.correlation_started_at if caused_by else None) or occurred_at
        return cls(
            event_id=event_id,
            type=event.type,
            version=event.version,
            occurred_at=occurred_at,
            aggregate_type=event.aggregate_type,
            aggregate_id=str(aggregate_id),
            correlation_id=correlation_id,
            causation_id=caused_by.event_id if caused_by else None,
            payload=event,
            correlation_started_at=started_at,
            trace_context=tracing.context_for(caused_by),
        )

    @property
    def stream(self) -> str:
        """The stream it is published on: its event's, or the partition of it its aggregate
        hashes to (eventbus.runtime.partitions)."""
        return partitions.stream_for(self.payload.stream, self.aggregate_id, partitioned=self.payload.partitioned)


def __getattr__(name: str) -> object:
    # encode/decode live in eventbus.messages.codec; they stay importable from here for older callers
    # (the benchmark). Looked up lazily: the codec imports this module.
    if name in ("encode", "decode"):
        from eventbus.messages import codec

        return getattr(codec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
