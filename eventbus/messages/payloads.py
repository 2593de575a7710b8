"""Event payloads to JSON data and back: the mapper between frozen dataclasses and what
json.dumps/json.loads speak.

Supported field types: str, int, bool, Decimal (as a string), UUID (as a string), aware
datetimes (ISO 8601), nested frozen dataclasses, tuples and lists of these, and `X | None`.
Loading checks every value and raises InvalidEvent naming the offending path
(`payload.items[0].quantity`); keys the class does not declare are ignored, so a field added
with a default reads older payloads and older consumers read newer ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from eventbus.messages.events import InvalidEvent

__all__ = ["dump", "load"]

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def dump(value: Any) -> Any:
    """JSON data for a payload (a dataclass) or any value inside one."""
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: dump(getattr(value, name)) for name in names}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


_LOADERS: dict[Any, Callable[[Any, str], Any]] = {}


def load(tp: Any, value: Any, path: str) -> Any:
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
