"""What a consumer group does with each message it was delivered, before any of it is applied:
work to do, a message to acknowledge and skip, or a failure (eventbus.store.failures decides what
becomes of it).

- a tombstone (pending, but deleted from the stream) is acknowledged;
- a message this process cannot read fails for good (dead letters), unless it is of a known type
  this group does not handle: then it is the handling groups' to dead-letter, and skipped here;
- a newer version of an event this group handles fails until the consumer is upgraded; one this
  group does not handle is skipped;
- a message of a type the group does not handle is acknowledged and skipped;
- the rest is work, with its delivery count as its attempt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from eventbus.messages import registry
from eventbus.messages.codec import decode_message
from eventbus.messages.events import Envelope, NewerEventVersion, PermanentError, UnknownEventType, event_class
from eventbus.redis.transport import Message
from eventbus.store.failures import Failure

__all__ = ["Sorted", "Work", "triage"]


@dataclass
class Work:
    """A message to apply: its envelope, the group's handler for it, and its attempt."""

    message: Message
    envelope: Envelope
    handler: registry.Handler
    attempts: int


@dataclass
class Sorted:
    acks: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    failures: list[Failure] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)
    skipped: int = 0

    def skip(self, m: Message) -> None:
        self.acks[m.stream].append(m.id)
        self.skipped += 1


def triage(group: str, messages: Sequence[Message], delivery_counts: dict[tuple[str, str], int]) -> Sorted:
    """Sort a batch's messages (see the module docstring). No I/O."""
    out = Sorted()
    for m in messages:
        if m.fields is None:
            out.acks[m.stream].append(m.id)
            continue
        attempts = delivery_counts.get((m.stream, m.id), 1)
        try:
            envelope = decode_message(m.fields)
        except NewerEventVersion as exc:
            if registry.handler_for(group, exc.type) is None:  # not ours to wait for
                out.skip(m)
            else:
                out.failures.append(Failure(m, exc, "", attempts))
            continue
        except PermanentError as exc:
            if _anothers(group, m, exc):
                out.skip(m)
            else:
                out.failures.append(Failure(m, exc, "", attempts, permanent=True))
            continue
        handler = registry.handler_for(group, envelope.type)
        if handler is None:
            out.skip(m)
            continue
        out.work.append(Work(m, envelope, handler, attempts))
    return out


def _anothers(group: str, m: Message, exc: PermanentError) -> bool:
    """A broken message of a known type this group does not handle is the handling groups' to
    dead-letter, not this one's. One of an unknown type is every reader's."""
    raw_type = (m.fields or {}).get(b"type", b"").decode("utf-8", "replace")
    known = not isinstance(exc, UnknownEventType) and event_class(raw_type) is not None
    return known and registry.handler_for(group, raw_type) is None
