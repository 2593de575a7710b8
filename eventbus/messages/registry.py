"""Which consumer group handles which event: `@handles(OrderPlaced, group="inventory")`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from eventbus.messages.events import Envelope, Event
from eventbus.runtime import partitions

__all__ = [
    "Chore",
    "Handler",
    "chores_for",
    "groups",
    "handled_types",
    "handler_for",
    "handles",
    "housekeeping",
    "streams_for",
]

# A handler names the events it takes (list[Envelope[OrderPlaced]]); the registry holds any.
Handler = Callable[[list[Envelope[Any]]], None]
H = TypeVar("H", bound=Handler)

_HANDLERS: dict[str, dict[str, Handler]] = {}
_PIPELINE_SAFE: set[Handler] = set()
_STREAMS: dict[str, set[str]] = {}
_UNPARTITIONED: set[str] = set()
Chore = tuple[float, Callable[[], object]]
_CHORES: dict[str, list[Chore]] = {}


def handles(*event_classes: type[Event], group: str, pipeline_safe: bool = False) -> Callable[[H], H]:
    """Register the decorated function as `group`'s handler for these events.

    A handler receives a list of envelopes of one event type, in stream order (a consecutive
    run of a batch; a single one when the batch is retried message by message), and is thin:
    it turns them into one service call. It runs inside the consumer's transaction, so
    everything it writes, the events it records included, commits together with the inbox
    rows, or not at all. If it raises, the consumer rolls the batch back and applies the
    messages one by one, each in its own savepoint, to find the one that fails.

    pipeline_safe: the handler only runs `bulk` statements (it reads no row counts), so
    the consumer may apply a batch of it in PostgreSQL pipeline mode, saving round trips.
    """

    def register(func: H) -> H:
        if pipeline_safe:
            _PIPELINE_SAFE.add(func)
        table = _HANDLERS.setdefault(group, {})
        for cls in event_classes:
            if cls.type in table and table[cls.type] is not func:
                raise ValueError(f"group {group!r} already has a handler for {cls.type}")
            table[cls.type] = func
            _STREAMS.setdefault(group, set()).add(cls.stream)
            if not cls.partitioned:
                _UNPARTITIONED.add(cls.stream)
        return func

    return register


def handler_for(group: str, event_type: str) -> Handler | None:
    """The group's handler of this event type, or None: the group skips the type."""
    return _HANDLERS.get(group, {}).get(event_type)


def handled_types(group: str) -> list[str]:
    """The event types the group has a handler for, sorted."""
    return sorted(_HANDLERS.get(group, {}))


def groups() -> list[str]:
    """Every consumer group with a handler, sorted."""
    return sorted(_HANDLERS)


def streams_for(group: str) -> list[str]:
    """The streams a group reads: those of the events it handles, each partition of a
    partitioned one (eventbus.runtime.partitions)."""
    try:
        logical = sorted(_STREAMS[group])
    except KeyError:
        raise LookupError(f"no handlers are registered for consumer group {group!r}") from None
    return [name for stream in logical for name in partitions.expand(stream, partitioned=partitioned(stream))]


def logical_streams() -> list[str]:
    """Every stream some group reads, by its logical name (partitions not expanded), sorted."""
    return sorted({s for streams in _STREAMS.values() for s in streams})


def partitioned(stream: str) -> bool:
    """Whether a logical stream is split into partitions (all are, but those of events declared
    `partitioned=False`)."""
    return stream not in _UNPARTITIONED


def subscriptions() -> dict[str, list[str]]:
    """stream (each partition) -> groups reading it."""
    out: dict[str, list[str]] = {}
    for group in _STREAMS:
        for stream in streams_for(group):
            out.setdefault(stream, []).append(group)
    return out


def housekeeping(*, group: str, every_s: float) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register a chore that every consumer of `group` runs at start and then every `every_s`
    seconds, between batches (e.g. sending notifications a crashed consumer left unsent).
    A chore must be safe to run in several consumers at once."""

    def register(func: Callable[[], object]) -> Callable[[], object]:
        if func not in [f for _, f in _CHORES.get(group, [])]:
            _CHORES.setdefault(group, []).append((every_s, func))
        return func

    return register


def chores_for(group: str) -> list[Chore]:
    """The group's chores as (every_s, function)."""
    return list(_CHORES.get(group, []))


def pipeline_safe(handler: Handler) -> bool:
    """Was the handler registered as running only `bulk` statements (see `handles`)?"""
    return handler in _PIPELINE_SAFE
