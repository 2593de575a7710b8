"""The inbox: which events a consumer group has already applied.

Rows are written in the consumer's transaction, so they commit with the effects or not at all.
One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per batch both records the batch and
tells which events are new; on PostgreSQL a second consumer racing for the same event waits on
the unique index until the first commits, then sees the row and skips the event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from eventbus.models import ProcessedEvent

__all__ = ["claim", "release"]

_table = ProcessedEvent._meta.db_table
_event_id_field = ProcessedEvent._meta.get_field("event_id")


def _prep(event_id: uuid.UUID) -> object:
    return _event_id_field.get_db_prep_value(event_id, connection)


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def claim(group: str, event_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Record these events as applied by `group` in the current transaction; return the ones
    that were not recorded before (the ones to apply now)."""
    ids = sorted(set(event_ids))  # a fixed order keeps two racing batches from deadlocking
    if not ids:
        return set()
    now = timezone.now()
    qn = connection.ops.quote_name
    columns = f"{qn('consumer_group')}, {qn('event_id')}, {qn('processed_at')}"
    if connection.vendor == "postgresql":
        # One query text for any batch size: prepared once, cached by the driver.
        rows, params = "SELECT %s, unnest(%s::uuid[]), %s", [group, ids, now]
    else:
        rows = "VALUES " + ", ".join(["(%s, %s, %s)"] * len(ids))
        params = [x for event_id in ids for x in (group, _prep(event_id), now)]
    sql = (
        f"INSERT INTO {qn(_table)} ({columns}) {rows} "
        f"ON CONFLICT ({qn('consumer_group')}, {qn('event_id')}) DO NOTHING RETURNING {qn('event_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {_as_uuid(row[0]) for row in cursor.fetchall()}


def release(group: str, event_ids: Iterable[uuid.UUID]) -> None:
    """Forget events whose handler failed in this transaction, so a retry applies them."""
    ids = list(event_ids)
    if ids:
        ProcessedEvent.objects.filter(consumer_group=group, event_id__in=ids).delete()
