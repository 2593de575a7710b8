"""The transactional outbox: the only way application code publishes an event."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import connection, transaction
from django.utils import timezone

from eventbus import bulk
from eventbus.events import Envelope, Event, encode
from eventbus.models import OutboxEvent
from eventbus.transport import wake_relay

__all__ = ["OutsideTransaction", "record", "record_many"]


class OutsideTransaction(RuntimeError):
    """outbox.record() was called with no transaction open."""


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
    the relay is woken up (a hint only; it also polls).
    """
    (envelope,) = record_many([(event, aggregate_id, caused_by)], correlation_id=correlation_id)
    return envelope


def record_many(
    events: Sequence[tuple[Event, str | int | uuid.UUID, Envelope | None]],
    *,
    correlation_id: uuid.UUID | None = None,
) -> list[Envelope]:
    """record() for several (event, aggregate_id, caused_by) at once: one INSERT, same guarantee."""
    if not connection.in_atomic_block:
        raise OutsideTransaction("outbox.record() must run inside transaction.atomic()")
    if not events:
        return []
    now = timezone.now()
    envelopes = [
        Envelope.new(
            event, aggregate_id=str(aggregate_id), caused_by=caused_by, correlation_id=correlation_id, occurred_at=now
        )
        for event, aggregate_id, caused_by in events
    ]
    bulk.insert(
        OutboxEvent,
        _OUTBOX_COLUMNS,
        [
            (e.event_id, e.type, e.stream, e.aggregate_type, e.aggregate_id, e.correlation_id, encode(e), now)
            for e in envelopes
        ],
    )
    _wake_relay_after_commit()
    return envelopes


_OUTBOX_COLUMNS = (
    "event_id", "event_type", "stream", "aggregate_type", "aggregate_id", "correlation_id", "body", "created_at",
)  # fmt: skip


def _wake_relay_after_commit() -> None:
    # One wake-up per transaction, however many events it records. A callback registered in a
    # savepoint that rolls back is dropped by Django, and then the next record() registers again.
    if not any(func is wake_relay for _, func, _ in connection.run_on_commit):
        transaction.on_commit(wake_relay)
