"""Dead letters: messages a consumer group gave up on, and how operators replay or discard them.

Used by the consumer runner, the admin actions and `manage.py deadletters`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from eventbus.models import DeadLetter
from eventbus.redis.client import text
from eventbus.redis.transport import Fields, Message, get_transport

__all__ = [
    "REPLAY_FIELD",
    "deadletter_discard",
    "deadletter_record",
    "deadletter_replay",
    "deadletters_resolve",
    "fields_as_text",
]

# A replayed message carries the id of its DeadLetter row, so success resolves that row and a
# new failure updates it instead of creating another.
REPLAY_FIELD = "deadletter_id"


def fields_as_text(fields: Fields | None) -> dict[str, str]:
    """A stream entry's fields as text, field by field (bytes that are not UTF-8 escaped)."""
    return {text(k): text(v) for k, v in (fields or {}).items()}


def replayed_deadletter_id(fields: Fields | None) -> int | None:
    raw = (fields or {}).get(REPLAY_FIELD.encode())
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


@transaction.atomic
def deadletter_record(
    *,
    group: str,
    message: Message,
    error: str,
    traceback: str,
    attempts: int,
    event_id: uuid.UUID | None = None,
    event_type: str = "",
    failed_at: dt.datetime | None = None,
    first_failed_at: dt.datetime | None = None,
) -> DeadLetter:
    """Park a message for `group`. Idempotent per (group, stream, message id): a message that is
    dead-lettered again after a crash updates its row. A replayed message that fails again
    updates the row it was replayed from."""
    now = failed_at or timezone.now()
    fields = fields_as_text(message.fields)
    replay_of = replayed_deadletter_id(message.fields)
    row = None
    if replay_of is not None:
        row = DeadLetter.objects.select_for_update().filter(pk=replay_of, consumer_group=group).first()
    if row is None:
        row, created = DeadLetter.objects.select_for_update().get_or_create(
            consumer_group=group,
            stream=message.stream,
            message_id=message.id,
            defaults={
                "fields": fields,
                "event_id": event_id,
                "event_type": event_type,
                "error": error,
                "traceback": traceback,
                "attempts": attempts,
                "first_failed_at": first_failed_at or now,
                "last_failed_at": now,
            },
        )
        if created:
            return row
    row.status = DeadLetter.Status.DEAD
    row.error = error
    row.traceback = traceback
    row.attempts = max(row.attempts, attempts) if replay_of is None else row.attempts + attempts
    row.last_failed_at = now
    row.event_id = row.event_id or event_id
    row.event_type = row.event_type or event_type
    row.save(update_fields=["status", "error", "traceback", "attempts", "last_failed_at", "event_id", "event_type"])
    return row


def deadletters_resolve(ids: Iterable[int]) -> None:
    """Mark replayed dead letters resolved (called in the consumer's transaction)."""
    ids = list(ids)
    if ids:
        DeadLetter.objects.filter(pk__in=ids).exclude(status=DeadLetter.Status.DISCARDED).update(
            status=DeadLetter.Status.RESOLVED, resolved_at=timezone.now()
        )


def deadletter_replay(*, deadletters: QuerySet[DeadLetter]) -> int:
    """Deliver each dead letter again, to the group that failed it only (through the group's
    replay stream). Returns how many were replayed. Resolved and discarded ones are skipped."""
    transport = get_transport()
    count = 0
    candidates = deadletters.filter(status__in=[DeadLetter.Status.DEAD, DeadLetter.Status.REPLAYED])
    for pk in candidates.values_list("pk", flat=True).order_by("pk"):
        with transaction.atomic():
            row = DeadLetter.objects.select_for_update().filter(pk=pk).first()
            if row is None or row.status not in (DeadLetter.Status.DEAD, DeadLetter.Status.REPLAYED):
                continue
            fields = {k: v for k, v in row.fields.items() if k != REPLAY_FIELD}
            fields[REPLAY_FIELD] = str(row.pk)
            # XADD inside the transaction: the consumer's "resolved" update waits for this row
            # lock, so it cannot be overwritten by our "replayed" below.
            transport.replay(row.consumer_group, fields)
            row.status = DeadLetter.Status.REPLAYED
            row.replay_count += 1
            row.replayed_at = timezone.now()
            row.save(update_fields=["status", "replay_count", "replayed_at"])
            count += 1
    return count


def deadletter_discard(*, deadletters: QuerySet[DeadLetter]) -> int:
    """Give up on these dead letters for good (kept for the record, never replayed)."""
    return deadletters.exclude(status__in=[DeadLetter.Status.RESOLVED, DeadLetter.Status.DISCARDED]).update(
        status=DeadLetter.Status.DISCARDED, resolved_at=timezone.now()
    )
