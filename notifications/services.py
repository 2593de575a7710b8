"""Notifications writes: record a customer notification for an order event, and the state of
its e-mail as the mailer (notifications.mailer) works through them.

The Notification row commits with the consumer's inbox row and is due at once; the consumer
never sends. A mailer claims due rows (pending -> sending until a deadline, skipping rows
another mailer holds), sends them, and records each outcome: sent (when a server accepted it),
retried later with backoff, or dead. A row whose mailer died while it was claimed is due again
at its claim's deadline.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

import bulk
from config.metrics import order_stage_reached
from notifications.models import Notification
from notifications.wakeup import wake_mailers

__all__ = [
    "OrderNotice",
    "notification_for_order",
    "notifications_claim_due",
    "notifications_due_now",
    "notifications_for_orders",
    "notifications_give_up",
    "notifications_release",
    "notifications_replay",
    "notifications_retry_later",
    "notifications_sent",
]

_SUBJECTS = {
    Notification.Kind.ORDER_CONFIRMED: "Your order {ref} is confirmed",
    Notification.Kind.ORDER_REJECTED: "Your order {ref} could not be accepted",
    Notification.Kind.ORDER_CANCELLED: "Your order {ref} has been cancelled",
}


@dataclass(frozen=True)
class OrderNotice:
    """What to tell a customer about one order event."""

    event_id: uuid.UUID
    customer_id: int
    order_id: uuid.UUID
    kind: str
    context: dict[str, Any] = field(default_factory=dict)
    # When the order was placed (its events' correlation start), for the "notified" stage metric.
    order_placed_at: dt.datetime | None = None
    correlation_id: uuid.UUID | None = None


def notification_for_order(
    *, event_id: uuid.UUID, customer_id: int, order_id: uuid.UUID, kind: str, context: dict[str, Any] | None = None
) -> Notification:
    """Record the notification for one order event and return it; see notifications_for_orders."""
    with transaction.atomic():
        notifications_for_orders(notices=[OrderNotice(event_id, customer_id, order_id, kind, context or {})])
        return Notification.objects.get(event_id=event_id)


@transaction.atomic
def notifications_for_orders(*, notices: Sequence[OrderNotice]) -> list[Notification]:
    """Record one notification per order event (two queries per batch), due for e-mailing at
    once: the mailer sends it once this commits, never for a rolled-back event."""
    User = get_user_model()
    users = {
        pk: User(pk=pk, email=email, first_name=first_name, username=username)
        for pk, email, first_name, username in bulk.select(
            User, ["id", "email", "first_name", "username"], where={"id__in": sorted({n.customer_id for n in notices})}
        )
    }
    now = timezone.now()
    rows = []
    placed = {}
    for n in notices:
        user = users[n.customer_id]
        ref = str(n.order_id)[:8]
        ctx = {"name": user.first_name or user.get_username(), "order_ref": ref, **n.context}
        rows.append(
            Notification(
                user=user, order_id=n.order_id, event_id=n.event_id, kind=n.kind,
                channel=Notification.Channel.EMAIL, status=Notification.Status.PENDING,
                subject=_SUBJECTS[n.kind].format(ref=ref),
                body=render_to_string(f"notifications/{n.kind}.txt", ctx), created_at=now,
                correlation_id=n.correlation_id,
            )
        )  # fmt: skip
        placed[n.event_id] = n.order_placed_at
    bulk.insert(
        Notification,
        [
            {"user": r.user_id, "order_id": r.order_id, "event_id": r.event_id, "kind": r.kind, "channel": r.channel,
             "subject": r.subject, "body": r.body, "status": r.status, "error": "", "created_at": r.created_at,
             "attempts": 0, "next_attempt_at": now, "queued_at": now, "correlation_id": r.correlation_id,
             "order_placed_at": placed[r.event_id]}
            for r in rows
        ],
    )  # fmt: skip
    bulk.on_commit_once("notifications.wake-mailers", rows, wake_mailers)
    return rows


def notifications_claim_due(*, limit: int, claim_for: dt.timedelta) -> list[Notification]:
    """Claim up to `limit` notifications whose e-mail is due, the longest due first, for
    `claim_for` (pending -> sending): rows another mailer is claiming are skipped (row locks,
    SKIP LOCKED on PostgreSQL; SQLite runs one mailer), and a claimed row is nobody else's until
    its claim runs out. Returns them with their users."""
    now = timezone.now()
    with transaction.atomic():
        due = Notification.objects.select_for_update(skip_locked=True).filter(
            status__in=[Notification.Status.PENDING, Notification.Status.SENDING], next_attempt_at__lte=now
        )
        ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        Notification.objects.filter(pk__in=ids).update(
            status=Notification.Status.SENDING, next_attempt_at=now + claim_for
        )
    return list(Notification.objects.filter(pk__in=ids).select_related("user").order_by("created_at"))


@transaction.atomic
def notifications_sent(*, accepted: Mapping[Notification, dt.datetime]) -> None:
    """A mail server accepted these e-mails (each at its time): sent, for good. The "notified"
    stage of their orders is measured now."""
    if not accepted:
        return
    Notification.objects.filter(pk__in=[n.pk for n in accepted]).update(
        status=Notification.Status.SENT, attempts=F("attempts") + 1, next_attempt_at=None
    )
    bulk.update_each(Notification, "sent_at", {n.pk: at for n, at in accepted.items()})
    order_stage_reached("notified", (n.order_placed_at for n in accepted))


@transaction.atomic
def notifications_retry_later(*, due: Mapping[Notification, dt.datetime], error: str) -> None:
    """These e-mails failed for a reason that may pass (server down or silent, a 4xx answer):
    each is due again at its own time."""
    if not due:
        return
    Notification.objects.filter(pk__in=[n.pk for n in due]).update(
        status=Notification.Status.PENDING, attempts=F("attempts") + 1, error=error
    )
    bulk.update_each(Notification, "next_attempt_at", {n.pk: at for n, at in due.items()})


def notifications_give_up(*, notifications: Sequence[Notification], error: str) -> None:
    """These e-mails will not be accepted (a 5xx answer, no address, the retry window is over):
    dead letters, until someone replays them."""
    Notification.objects.filter(pk__in=[n.pk for n in notifications]).update(
        status=Notification.Status.DEAD, attempts=F("attempts") + 1, error=error, next_attempt_at=None
    )


def notifications_release(*, notifications: Sequence[Notification], due_at: dt.datetime) -> None:
    """Claimed e-mails that were not tried (the connection broke first, or the mailer stops):
    waiting again, due at `due_at`, with no attempt counted."""
    Notification.objects.filter(pk__in=[n.pk for n in notifications], status=Notification.Status.SENDING).update(
        status=Notification.Status.PENDING, next_attempt_at=due_at
    )


def notifications_due_now() -> int:
    """The mail server answers again: every waiting e-mail is due now rather than at the end
    of its backoff. Returns how many were brought forward."""
    now = timezone.now()
    return Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__gt=now).update(
        next_attempt_at=now
    )


def notifications_replay(*, ids: Iterable[int] | None = None) -> int:
    """Queue dead e-mails again (the given ones, or all): due now, with a fresh retry window.
    Returns how many."""
    dead = Notification.objects.filter(status=Notification.Status.DEAD)
    if ids is not None:
        dead = dead.filter(pk__in=list(ids))
    now = timezone.now()
    return dead.update(status=Notification.Status.PENDING, next_attempt_at=now, queued_at=now, attempts=0)
