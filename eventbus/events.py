"""Typed, versioned events and the envelope that carries them on the wire.

An event is a frozen dataclass subclassing `Event`; it names its `type`, `version` and the
`stream` it is published on. Defining the class registers it, so a consumer can turn any message
back into the right class and refuse, as a permanent error, one it does not know.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import types
import typing
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

__all__ = [
    "Envelope",
    "Event",
    "InvalidEvent",
    "MalformedMessage",
    "PermanentError",
    "UnknownEventType",
    "decode",
    "encode",
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

    def to_payload(self) -> dict[str, Any]:
        return _dump(self)

    @classmethod
    def from_payload(cls, payload: Any) -> Event:
        """Build the event from its JSON payload, raising InvalidEvent with the offending path."""
        return _load(cls, payload, "payload")


def event_class(type_: str, version: int) -> type[Event]:
    try:
        return _REGISTRY[(type_, version)]
    except KeyError:
        raise UnknownEventType(f"unknown event type {type_!r} version {version!r}") from None


def event_classes() -> list[type[Event]]:
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


def encode(envelope: Envelope) -> str:
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
            "payload": envelope.payload.to_payload(),
        },
        separators=(",", ":"),
    )


_ENVELOPE_FIELDS = ("event_id", "type", "version", "occurred_at", "aggregate_type", "aggregate_id")


def decode(raw: bytes | str) -> Envelope:
    """Parse and validate a wire envelope; every failure is a PermanentError saying why."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessage("message is not a JSON object")
    missing = [f for f in (*_ENVELOPE_FIELDS, "payload") if f not in data]
    if missing:
        raise MalformedMessage(f"envelope lacks field(s): {', '.join(missing)}")
    type_, version = data["type"], data["version"]
    if not isinstance(type_, str) or not isinstance(version, int) or isinstance(version, bool):
        raise MalformedMessage("envelope 'type' must be a string and 'version' an integer")
    cls = event_class(type_, version)
    try:
        return Envelope(
            event_id=_load(uuid.UUID, data["event_id"], "event_id"),
            type=type_,
            version=version,
            occurred_at=_load(dt.datetime, data["occurred_at"], "occurred_at"),
            aggregate_type=_load(str, data["aggregate_type"], "aggregate_type"),
            aggregate_id=_load(str, data["aggregate_id"], "aggregate_id"),
            correlation_id=_load(uuid.UUID, data.get("correlation_id") or data["event_id"], "correlation_id"),
            causation_id=_load(uuid.UUID | None, data.get("causation_id"), "causation_id"),
            payload=cls.from_payload(data["payload"]),
        )
    except InvalidEvent as exc:
        raise InvalidEvent(f"{type_} v{version}: {exc}") from None


# --- (de)serialisation of dataclass payloads ------------------------------------------------


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _dump(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: _dump(getattr(value, name)) for name in names}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


_LOADERS: dict[Any, Callable[[Any, str], Any]] = {}


def _load(tp: Any, value: Any, path: str) -> Any:
    """Convert JSON data to `tp`, raising InvalidEvent with the offending path. The converter of
    each type is built once (type introspection is slow, and every message goes through here)."""
    loader = _LOADERS.get(tp)
    if loader is None:
        loader = _LOADERS[tp] = _compile(tp)
    return loader(value, path)


def _compile(tp: Any) -> Callable[[Any, str], Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        (inner,) = [a for a in args if a is not type(None)]
        optional = type(None) in args
        load_inner = _compile(inner)

        def load_union(value: Any, path: str) -> Any:
            if value is None and optional:
                return None
            return load_inner(value, path)

        return load_union
    if origin in (tuple, list):
        load_item = _compile(typing.get_args(tp)[0])
        as_tuple = origin is tuple

        def load_sequence(value: Any, path: str) -> Any:
            if not isinstance(value, list):
                raise InvalidEvent(f"{path}: expected a list")
            items = [load_item(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if as_tuple else items

        return load_sequence
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        specs = [
            (
                f.name,
                _compile(hints[f.name]),
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            )
            for f in dataclasses.fields(tp)
        ]

        def load_dataclass(value: Any, path: str) -> Any:
            if not isinstance(value, dict):
                raise InvalidEvent(f"{path}: expected an object")
            kwargs = {}
            for name, load_field, required in specs:
                if name in value:
                    kwargs[name] = load_field(value[name], f"{path}.{name}")
                elif required:
                    raise InvalidEvent(f"{path}.{name}: required")
            try:
                return tp(**kwargs)
            except (TypeError, ValueError) as exc:  # a __post_init__ check of the payload class
                raise InvalidEvent(f"{path}: {exc}") from None

        return load_dataclass
    simple = _SIMPLE.get(tp)
    if simple is None:
        raise TypeError(f"unsupported payload type {tp!r}")
    return simple


def _load_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(f"{path}: expected a string")
    return value


def _load_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidEvent(f"{path}: expected true or false")
    return value


def _load_int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEvent(f"{path}: expected an integer")
    return value


def _load_decimal(value: Any, path: str) -> Decimal:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidEvent(f"{path}: expected a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidEvent(f"{path}: {value!r} is not a decimal") from None
    if not number.is_finite():
        raise InvalidEvent(f"{path}: {value!r} is not a finite decimal")
    return number


def _load_uuid(value: Any, path: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise InvalidEvent(f"{path}: {value!r} is not a UUID") from None


def _load_datetime(value: Any, path: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidEvent(f"{path}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(f"{path}: {value!r} has no time zone")
    return parsed


_SIMPLE: dict[Any, Callable[[Any, str], Any]] = {
    str: _load_str,
    bool: _load_bool,
    int: _load_int,
    Decimal: _load_decimal,
    uuid.UUID: _load_uuid,
    dt.datetime: _load_datetime,
}
