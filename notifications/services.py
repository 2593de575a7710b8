"""Notifications writes: record a customer notification for an order event and e-mail it.

The Notification row commits with the consumer's inbox row; the e-mail goes out after that
commit (never for a rolled-back event). A row is claimed (pending -> sending) before its
e-mail is sent, so two processes never send the same one.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import Notification

__all__ = ["notification_for_order", "notifications_deliver"]

log = logging.getLogger(__name__)

_SUBJECTS = {
    Notification.Kind.ORDER_CONFIRMED: "Your order {ref} is confirmed",
    Notification.Kind.ORDER_REJECTED: "Your order {ref} could not be accepted",
    Notification.Kind.ORDER_CANCELLED: "Your order {ref} has been cancelled",
}


@transaction.atomic
def notification_for_order(
    *, event_id: uuid.UUID, customer_id: int, order_id: uuid.UUID, kind: str, context: dict[str, Any] | None = None
) -> Notification:
    """Record the notification for an order event; its e-mail is sent after commit."""
    user = get_user_model().objects.only("email", "first_name", "username").get(pk=customer_id)
    ref = str(order_id)[:8]
    ctx = {"name": user.first_name or user.get_username(), "order_ref": ref, **(context or {})}
    notification = Notification.objects.create(
        user=user,
        order_id=order_id,
        event_id=event_id,
        kind=kind,
        subject=_SUBJECTS[kind].format(ref=ref),
        body=render_to_string(f"notifications/{kind}.txt", ctx),
        created_at=timezone.now(),
    )
    _deliver_after_commit(notification.pk)
    return notification


class _Delivery:
    """One post-commit delivery per transaction, however many notifications it created."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self) -> None:
        notifications_deliver(ids=self.ids)


def _deliver_after_commit(pk: int) -> None:
    for _, func, _ in connection.run_on_commit:
        if isinstance(func, _Delivery):
            func.ids.append(pk)
            return
    delivery = _Delivery()
    delivery.ids.append(pk)
    transaction.on_commit(delivery, robust=True)


def notifications_deliver(*, ids: Iterable[int] | None = None, older_than: dt.timedelta | None = None) -> int:
    """Send pending notifications (the given ones, or all pending older than `older_than`).
    Returns how many were sent. Failures are recorded on the row, never raised."""
    with transaction.atomic():
        pending = Notification.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            status=Notification.Status.PENDING
        )
        if ids is not None:
            pending = pending.filter(pk__in=list(ids))
        if older_than is not None:
            pending = pending.filter(created_at__lt=timezone.now() - older_than)
        batch = list(pending.select_related("user"))
        if not batch:
            return 0
        Notification.objects.filter(pk__in=[n.pk for n in batch]).update(status=Notification.Status.SENDING)

    sent: list[int] = []
    failed: dict[str, list[int]] = {}
    mail = get_connection()
    try:
        mail.open()
        for n in batch:
            if not n.user.email:
                failed.setdefault("the customer has no e-mail address", []).append(n.pk)
                continue
            message = EmailMessage(
                n.subject, n.body, settings.DEFAULT_FROM_EMAIL, [n.user.email],
                headers={"X-Event-Id": str(n.event_id), "X-Order-Id": str(n.order_id)},
                connection=mail,
            )  # fmt: skip
            try:
                message.send()
                sent.append(n.pk)
            except Exception as exc:  # noqa: BLE001 - any mail failure is recorded on the row
                failed.setdefault(f"{type(exc).__name__}: {exc}", []).append(n.pk)
    except Exception as exc:  # noqa: BLE001 - the mail server cannot be reached at all
        unsent = [n.pk for n in batch if n.pk not in sent]
        failed.setdefault(f"{type(exc).__name__}: {exc}", []).extend(unsent)
    finally:
        mail.close()

    now = timezone.now()
    if sent:
        Notification.objects.filter(pk__in=sent).update(status=Notification.Status.SENT, sent_at=now)
    for error, pks in failed.items():
        log.warning("could not e-mail %d notification(s): %s", len(pks), error)
        Notification.objects.filter(pk__in=pks).update(status=Notification.Status.FAILED, error=error)
    return len(sent)
