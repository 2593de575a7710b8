"""Notifications writes: record a customer notification for an order event and e-mail it.

The Notification row commits with the consumer's inbox row; the e-mail goes out after that
commit (never for a rolled-back event). A row is claimed (pending -> sending) before its
e-mail is sent, so two processes never send the same one.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

import bulk
from config.metrics import order_stage_reached
from notifications.models import Notification

__all__ = ["OrderNotice", "notification_for_order", "notifications_deliver", "notifications_for_orders"]

log = logging.getLogger(__name__)

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


def notification_for_order(
    *, event_id: uuid.UUID, customer_id: int, order_id: uuid.UUID, kind: str, context: dict[str, Any] | None = None
) -> Notification:
    """Record the notification for one order event and return it; see notifications_for_orders."""
    with transaction.atomic():
        notifications_for_orders(notices=[OrderNotice(event_id, customer_id, order_id, kind, context or {})])
        return Notification.objects.get(event_id=event_id)


@transaction.atomic
def notifications_for_orders(*, notices: Sequence[OrderNotice]) -> list[Notification]:
    """Record one notification per order event (two queries per batch); their e-mails are sent
    after commit, never for a rolled-back event."""
    User = get_user_model()
    users = {
        pk: User(pk=pk, email=email, first_name=first_name, username=username)
        for pk, email, first_name, username in bulk.select(
            User, ["id", "email", "first_name", "username"], where={"id__in": sorted({n.customer_id for n in notices})}
        )
    }
    now = timezone.now()
    rows = []
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
            )
        )  # fmt: skip
    bulk.insert(
        Notification,
        [
            {"user": r.user_id, "order_id": r.order_id, "event_id": r.event_id, "kind": r.kind, "channel": r.channel,
             "subject": r.subject, "body": r.body, "status": r.status, "error": "", "created_at": r.created_at}
            for r in rows
        ],
    )  # fmt: skip
    # One delivery (one mail connection) per transaction, however many handlers of a consumer's
    # batch created notifications; _deliver claims each row first, so a rolled-back one is never sent.
    bulk.on_commit_once("notifications.deliver", rows, _deliver)
    order_stage_reached("notified", (n.order_placed_at for n in notices))
    return rows


def notifications_deliver(*, ids: Iterable[int] | None = None, older_than: dt.timedelta | None = None) -> int:
    """Send pending notifications (the given ones, or all pending older than `older_than`).
    Returns how many were sent. Failures are recorded on the row, never raised."""
    pending = Notification.objects.filter(status=Notification.Status.PENDING)
    if ids is not None:
        pending = pending.filter(pk__in=list(ids))
    if older_than is not None:
        pending = pending.filter(created_at__lt=timezone.now() - older_than)
    # The oldest first, along notification_status (status, created_at), then their users by key:
    # a plan that stays cheap on a large table whatever its statistics say.
    oldest = list(pending.order_by("created_at").values_list("pk", flat=True)[:1000])
    if not oldest:
        return 0
    return _deliver(list(Notification.objects.filter(pk__in=oldest).select_related("user").order_by("created_at")))


def _deliver(notifications: list[Notification]) -> int:
    """Claim (pending -> sending, one update: exclusive, so never sent twice), send, record."""
    claimed = {
        event_id
        for (event_id,) in bulk.update(
            Notification,
            {"status": Notification.Status.SENDING},
            where={"event_id__in": [n.event_id for n in notifications], "status": Notification.Status.PENDING},
            returning=["event_id"],
        )
    }
    batch = [n for n in notifications if n.event_id in claimed]
    if not batch:
        return 0
    sent: list[uuid.UUID] = []
    failed: dict[str, list[uuid.UUID]] = {}
    mail = get_connection()
    try:
        mail.open()
        for n in batch:
            if not n.user.email:
                failed.setdefault("the customer has no e-mail address", []).append(n.event_id)
                continue
            message = EmailMessage(
                n.subject, n.body, settings.DEFAULT_FROM_EMAIL, [n.user.email],
                headers={"X-Event-Id": str(n.event_id), "X-Order-Id": str(n.order_id)},
                connection=mail,
            )  # fmt: skip
            try:
                message.send()
                sent.append(n.event_id)
            except Exception as exc:  # noqa: BLE001 - any mail failure is recorded on the row
                failed.setdefault(f"{type(exc).__name__}: {exc}", []).append(n.event_id)
    except Exception as exc:  # noqa: BLE001 - the mail server cannot be reached at all
        unsent = [n.event_id for n in batch if n.event_id not in sent]
        failed.setdefault(f"{type(exc).__name__}: {exc}", []).extend(unsent)
    finally:
        mail.close()

    if sent:
        with transaction.atomic():
            bulk.relaxed_commit()  # lost in a crash, the row stays 'sending': never sent twice
            bulk.update(
                Notification,
                {"status": Notification.Status.SENT, "sent_at": timezone.now()},
                where={"event_id__in": sent},
            )
    for error, event_ids in failed.items():
        log.warning("could not e-mail %d notification(s): %s", len(event_ids), error)
        Notification.objects.filter(event_id__in=event_ids).update(status=Notification.Status.FAILED, error=error)
    return len(sent)
