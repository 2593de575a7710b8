"""The inbox: which events a consumer group has already applied, and how.

Rows are written in the consumer's transaction, so they commit with the effects or not at all.
One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per batch both records the batch and
tells which events are new; on PostgreSQL a second consumer racing for the same event waits on
the unique index until the first commits, then sees the row and skips the event. The row also
says what an operator following an order needs (see ProcessedEvent); the batch itself is
recorded once it ran (`record_batch`), in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection

import bulk
from eventbus.models import ConsumerBatch, ProcessedEvent

__all__ = ["Claim", "claim", "record_batch", "release"]

_table = ProcessedEvent._meta.db_table
_COLUMNS = (
    "consumer_group", "event_id", "processed_at", "event_type", "occurred_at", "aggregate_id", "correlation_id",
    "stream", "message_id", "consumer", "attempt", "batch_id",
)  # fmt: skip
# The per-event columns, with their PostgreSQL array types (one array parameter each).
_PER_EVENT = (
    ("event_id", "uuid"), ("event_type", "varchar"), ("occurred_at", "timestamptz"), ("aggregate_id", "varchar"),
    ("correlation_id", "uuid"), ("stream", "varchar"), ("message_id", "varchar"), ("attempt", "int"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Claim:
    """One event a batch is about to apply, with where it came from."""

    event_id: uuid.UUID
    event_type: str
    occurred_at: dt.datetime
    aggregate_id: str
    correlation_id: uuid.UUID | None
    stream: str
    message_id: str
    attempt: int


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _insert_sql() -> str:
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in _COLUMNS)
    if connection.vendor == "postgresql":
        # One query text for any batch size (prepared once): the per-event values as arrays.
        arrays = ", ".join(f"%s::{kind}[]" for _, kind in _PER_EVENT)
        names = ", ".join(name for name, _ in _PER_EVENT)
        rows = (
            f"SELECT %s, e.event_id, %s, e.event_type, e.occurred_at, e.aggregate_id, e.correlation_id, e.stream, "
            f"e.message_id, %s, e.attempt, %s FROM unnest({arrays}) AS e({names})"
        )
    else:
        rows = "VALUES {values}"
    return (
        f"INSERT INTO {qn(_table)} ({columns}) {rows} "
        f"ON CONFLICT ({qn('consumer_group')}, {qn('event_id')}) DO NOTHING RETURNING {qn('event_id')}"
    )


def claim(
    group: str, claims: Sequence[Claim], *, consumer: str, batch_id: uuid.UUID, at: dt.datetime
) -> set[uuid.UUID]:
    """Record these events as applied by `group` in the current transaction; return the ones
    that were not recorded before (the ones to apply now)."""
    unique = {c.event_id: c for c in claims}
    ordered = [unique[i] for i in sorted(unique)]  # a fixed order keeps two racing batches from deadlocking
    if not ordered:
        return set()
    sql = _insert_sql()
    params: list[object]
    if connection.vendor == "postgresql":
        # In the order the SELECT reads them: group, processed_at, consumer, batch_id, the arrays.
        params = [group, at, consumer, batch_id, *([getattr(c, name) for c in ordered] for name, _ in _PER_EVENT)]
    else:
        field = ProcessedEvent._meta.get_field
        row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        sql = sql.replace("{values}", ", ".join([row] * len(ordered)))
        params = []
        for c in ordered:
            values = (group, c.event_id, at, c.event_type, c.occurred_at, c.aggregate_id, c.correlation_id, c.stream,
                      c.message_id, consumer, c.attempt, batch_id)  # fmt: skip
            params += [field(name).get_db_prep_save(v, connection) for name, v in zip(_COLUMNS, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {_as_uuid(row[0]) for row in cursor.fetchall()}


def record_batch(
    group: str, *, batch_id: uuid.UUID, consumer: str, started_at: dt.datetime, duration_ms: float, size: int
) -> None:
    """Record the batch the inbox rows name, in the same transaction (at its end, when its
    duration is known; inside a pipeline it goes out with the commit)."""
    bulk.insert(
        ConsumerBatch,
        [{"id": batch_id, "consumer_group": group, "consumer": consumer, "started_at": started_at,
          "duration_ms": round(duration_ms, 3), "size": size}],
    )  # fmt: skip


def release(group: str, event_ids: Iterable[uuid.UUID]) -> None:
    """Forget events whose handler failed in this transaction, so a retry applies them."""
    ids = list(event_ids)
    if ids:
        ProcessedEvent.objects.filter(consumer_group=group, event_id__in=ids).delete()
