"""Typed, versioned events, the registry of their classes, and the envelope that carries them.

An event is a frozen dataclass subclassing `Event`; it names its `type`, `version` and the
`stream` it is published on. Defining the class registers it, so a consumer can turn any message
back into the right class and refuse, as a permanent error, one it does not know. The wire form
is eventbus.codec's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, ClassVar

__all__ = [
    "Envelope",
    "Event",
    "InvalidEvent",
    "MalformedMessage",
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
    """No event class is registered for this (type, version)."""


class InvalidEvent(PermanentError):
    """The payload does not match the event's schema."""


_REGISTRY: dict[tuple[str, int], type[Event]] = {}


class Event:
    """Base of all events. Subclasses are frozen dataclasses with these class attributes."""

    type: ClassVar[str]
    version: ClassVar[int] = 1
    stream: ClassVar[str]
    aggregate_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" not in cls.__dict__:
            return  # an abstract intermediate class
        key = (cls.type, cls.version)
        previous = _REGISTRY.get(key)
        if previous is not None and previous.__qualname__ != cls.__qualname__:
            raise TypeError(f"event {key} is registered twice: {previous!r} and {cls!r}")
        _REGISTRY[key] = cls


def event_class(type_: str, version: int) -> type[Event]:
    """The class registered for this (type, version); UnknownEventType if there is none."""
    try:
        return _REGISTRY[(type_, version)]
    except KeyError:
        raise UnknownEventType(f"unknown event type {type_!r} version {version!r}") from None


def event_classes() -> list[type[Event]]:
    """Every registered event class."""
    return list(_REGISTRY.values())


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """An event with its identity and lineage, exactly as it travels through outbox and stream."""

    event_id: uuid.UUID
    type: str
    version: int
    occurred_at: dt.datetime
    aggregate_type: str
    aggregate_id: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    payload: Event

    @classmethod
    def new(
        cls,
        event: Event,
        *,
        aggregate_id: str,
        caused_by: Envelope | None = None,
        correlation_id: uuid.UUID | None = None,
        occurred_at: dt.datetime | None = None,
    ) -> Envelope:
        event_id = uuid.uuid4()
        if correlation_id is None:
            correlation_id = caused_by.correlation_id if caused_by else event_id
        return cls(
            event_id=event_id,
            type=event.type,
            version=event.version,
            occurred_at=occurred_at or dt.datetime.now(dt.UTC),
            aggregate_type=event.aggregate_type,
            aggregate_id=str(aggregate_id),
            correlation_id=correlation_id,
            causation_id=caused_by.event_id if caused_by else None,
            payload=event,
        )

    @property
    def stream(self) -> str:
        return self.payload.stream


def __getattr__(name: str) -> object:
    # encode/decode live in eventbus.codec; they stay importable from here for older callers
    # (the benchmark). Looked up lazily: the codec imports this module.
    if name in ("encode", "decode"):
        from eventbus import codec

        return getattr(codec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
