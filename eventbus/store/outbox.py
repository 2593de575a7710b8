"""The transactional outbox: the only way application code publishes an event.

An event is written in the caller's transaction. Once that transaction commits, the process
that committed it publishes it at once: XADD, and in the same Redis round trip a mark that it
did (EVENTBUS["PUBLISH_ON_COMMIT"], the default). The relay deletes the rows of marked events
in bulk, and publishes rows older than RELAY_GRACE_S that nobody marked (their process
crashed after commit, Redis was down). With publishing on commit turned off, the relay
publishes everything and is woken after each commit instead.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

import bulk
from eventbus.messages.codec import encode
from eventbus.messages.events import Envelope, Event
from eventbus.models import OutboxEvent
from eventbus.redis.breaker import Breaker
from eventbus.redis.transport import TransportUnavailable, get_transport
from eventbus.redis.wakeup import wake_relay
from eventbus.runtime import logcontext, tracing
from eventbus.runtime.metrics import count_published

__all__ = ["OutsideTransaction", "record", "record_many"]


class OutsideTransaction(RuntimeError):
    """outbox.record() was called with no transaction open."""


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """The request an event comes from: its id (the event's correlation id) and its trace span."""

    correlation_id: uuid.UUID
    trace_context: dict[str, str] | None = None


def record(
    event: Event,
    *,
    aggregate_id: str | int | uuid.UUID,
    caused_by: Envelope | None = None,
    correlation_id: uuid.UUID | None = None,
) -> Envelope:
    """Write the event to the outbox in the caller's transaction and return its envelope.

    Guarantee: the event exists if and only if the caller's transaction commits. Refuses to run
    outside `transaction.atomic()`, where the event could outlive a failed change. After commit
    it is published at once, or by the relay if that fails (see the module docstring).
    """
    (envelope,) = record_many([(event, aggregate_id, caused_by)], correlation_id=correlation_id)
    return envelope


def record_many(
    events: Sequence[tuple[Event, str | int | uuid.UUID, Envelope | None]],
    *,
    correlation_id: uuid.UUID | None = None,
    origins: Sequence[Origin] | None = None,
) -> list[Envelope]:
    """record() for several (event, aggregate_id, caused_by) at once: one INSERT, same guarantee.
    `origins`, one per event, where the events of one call come from several requests (the web's
    order desk): each event's correlation id and trace context are its request's.

    An event nothing caused takes the correlation id bound to the work in hand (a web request's
    id, see eventbus.runtime.logcontext), so one id leads from the request to every event it caused."""
    if not connection.in_atomic_block:
        raise OutsideTransaction("outbox.record() must run inside transaction.atomic()")
    if not events:
        return []
    bound = None if correlation_id is not None else _bound_correlation()
    now = timezone.now()
    envelopes = [
        Envelope.new(
            event,
            aggregate_id=str(aggregate_id),
            caused_by=caused_by,
            correlation_id=correlation_id or (None if caused_by else bound),
            occurred_at=now,
        )
        for event, aggregate_id, caused_by in events
    ]
    if origins is not None:
        envelopes = [
            dataclasses.replace(e, correlation_id=origin.correlation_id, trace_context=origin.trace_context)
            for e, origin in zip(envelopes, origins, strict=True)
        ]
    bodies = [encode(e) for e in envelopes]
    bulk.insert(
        OutboxEvent,
        [
            {"event_id": e.event_id, "event_type": e.type, "stream": e.stream, "aggregate_type": e.aggregate_type,
             "aggregate_id": e.aggregate_id, "correlation_id": e.correlation_id, "body": body, "created_at": now}
            for e, body in zip(envelopes, bodies, strict=True)
        ],
    )  # fmt: skip
    if settings.EVENTBUS["PUBLISH_ON_COMMIT"]:
        # One callback per call, registered in the current savepoint: if that savepoint rolls
        # back, Django drops the callback with it, so a rolled-back event is never published.
        transaction.on_commit(functools.partial(publish_committed, envelopes, bodies), robust=True)
    else:
        # One wake-up per transaction, however many events it records.
        bulk.on_commit_once("eventbus.wake-relay", (), lambda _: wake_relay())
    return envelopes


def _bound_correlation() -> uuid.UUID | None:
    value = logcontext.current().get("correlation_id")
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


_publish_breaker = Breaker("could not publish committed events at once (the relay will)")


def publish_committed(envelopes: Sequence[Envelope], bodies: Sequence[str]) -> bool:
    """XADD committed events and mark them published, in one Redis round trip. Never raises: on
    failure the rows stay for the relay (which publishes rows older than RELAY_GRACE_S; a
    repeat is dropped by the consumers' inbox). Returns True if they were published."""
    entries = [(e.stream, {"type": e.type, "event": body}) for e, body in zip(envelopes, bodies, strict=True)]
    marks = [str(e.event_id) for e in envelopes]
    streams = ",".join(sorted({e.stream for e in envelopes}))
    with tracing.publishing(streams, len(envelopes)):
        published = _publish_breaker.call(
            lambda: get_transport().publish(entries, mark=marks, prompt=True), TransportUnavailable
        )
    if published:
        count_published((e.stream, e.type) for e in envelopes)
    return published
