"""Which consumer group handles which event: `@handles(OrderPlaced, group="inventory")`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from eventbus.events import Envelope, Event

__all__ = ["Handler", "groups", "handler_for", "handles", "streams_for"]

Handler = Callable[[Envelope], None]
H = TypeVar("H", bound=Handler)

_HANDLERS: dict[str, dict[str, Handler]] = {}
_STREAMS: dict[str, set[str]] = {}


def handles(*event_classes: type[Event], group: str) -> Callable[[H], H]:
    """Register the decorated function as `group`'s handler for these events.

    A handler is thin: it turns the envelope into one service call. It runs inside the consumer's
    transaction (in its own savepoint), so everything it writes, the events it records included,
    commits together with the inbox row, or not at all.
    """

    def register(func: H) -> H:
        table = _HANDLERS.setdefault(group, {})
        for cls in event_classes:
            if cls.type in table and table[cls.type] is not func:
                raise ValueError(f"group {group!r} already has a handler for {cls.type}")
            table[cls.type] = func
            _STREAMS.setdefault(group, set()).add(cls.stream)
        return func

    return register


def handler_for(group: str, event_type: str) -> Handler | None:
    return _HANDLERS.get(group, {}).get(event_type)


def groups() -> list[str]:
    return sorted(_HANDLERS)


def streams_for(group: str) -> list[str]:
    """The streams a group reads: those of the events it handles."""
    try:
        return sorted(_STREAMS[group])
    except KeyError:
        raise LookupError(f"no handlers are registered for consumer group {group!r}") from None


def subscriptions() -> dict[str, list[str]]:
    """stream -> groups reading it."""
    out: dict[str, list[str]] = {}
    for group, streams in _STREAMS.items():
        for stream in streams:
            out.setdefault(stream, []).append(group)
    return out
