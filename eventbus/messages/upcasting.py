"""Upcasters: how a consumer reads an older version of an event it has since changed.

An upcaster turns the JSON payload of one version of an event type into the payload of the
next version. They chain, so a consumer that knows version 3 reads version 1 through 1->2 and
2->3; the handler only ever sees the newest class. Declare one beside the event, in the app's
events.py (which the bus imports at start):

    @upcaster("orders.OrderPlaced", from_version=1)
    def gift_wrapping_arrives(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "gift_wrapped": False}

Keep an upcaster as long as messages of its version may still arrive (streams, dead letters,
outbox rows kept for republishing). docs/architecture.md, "Changing an event", has the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from eventbus.messages.events import InvalidEvent, UnknownEventType

__all__ = ["Upcaster", "upcast", "upcaster"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
U = TypeVar("U", bound=Upcaster)

_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(type_: str, *, from_version: int) -> Callable[[U], U]:
    """Register the decorated function as the step from `from_version` of `type_` to the next
    version. One step per (type, version): a second one is an error, not a silent override."""

    def register(func: U) -> U:
        key = (type_, from_version)
        previous = _UPCASTERS.get(key)
        if previous is not None and previous.__qualname__ != func.__qualname__:
            raise ValueError(f"{type_} already has an upcaster from version {from_version}: {previous.__qualname__}")
        _UPCASTERS[key] = func
        return func

    return register


def upcast(type_: str, payload: object, *, from_version: int, to_version: int) -> dict[str, Any]:
    """The payload of `from_version` brought to `to_version` through each step in turn.

    UnknownEventType (permanent) if a step is missing: nothing this process can do will read the
    message. InvalidEvent (permanent) if a step fails on the payload it was given."""
    version = from_version
    while version < to_version:
        step = _UPCASTERS.get((type_, version))
        if step is None:
            raise UnknownEventType(
                f"unknown event type {type_!r} version {from_version!r}: no upcaster from version {version} "
                f"(this consumer reads version {to_version})"
            )
        if not isinstance(payload, dict):
            raise InvalidEvent(f"{type_} v{version}: payload: expected an object")
        try:
            payload = step(payload)
        except Exception as exc:  # a bug in the step, or a payload it did not expect
            raise InvalidEvent(f"{type_} v{version}: upcaster to v{version + 1} failed: {exc!r}") from exc
        version += 1
    if not isinstance(payload, dict):
        raise InvalidEvent(f"{type_} v{version}: payload: expected an object")
    return payload
