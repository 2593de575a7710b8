"""Notifications whose consumer died between committing them and e-mailing them are sent by the
notifications group's housekeeping, oldest first, exactly once."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.core import mail
from django.utils import timezone

from notifications.handlers import send_stragglers
from notifications.models import Notification
from notifications.services import notifications_deliver
from tests.factories import UserFactory


def _notification(user, *, status: str, age_s: float) -> Notification:
    return Notification.objects.create(
        user=user, order_id=uuid.uuid4(), event_id=uuid.uuid4(), kind=Notification.Kind.ORDER_CONFIRMED,
        subject=f"subject {age_s}", body="body", status=status,
        created_at=timezone.now() - dt.timedelta(seconds=age_s),
    )  # fmt: skip


@pytest.mark.django_db
def test_pending_notifications_are_sent_once_and_claimed_ones_are_left_alone():
    user = UserFactory()
    pending = [_notification(user, status=Notification.Status.PENDING, age_s=age) for age in (30, 60, 90)]
    claimed = _notification(user, status=Notification.Status.SENDING, age_s=120)  # maybe sent: never again
    sent = _notification(user, status=Notification.Status.SENT, age_s=150)

    send_stragglers()
    send_stragglers()

    assert sorted(m.subject for m in mail.outbox) == sorted(n.subject for n in pending)
    assert all(m.to == [user.email] for m in mail.outbox)
    statuses = dict(Notification.objects.values_list("pk", "status"))
    assert [statuses[n.pk] for n in pending] == ["sent"] * 3
    assert statuses[claimed.pk] == "sending"
    assert statuses[sent.pk] == "sent"


@pytest.mark.django_db
def test_the_oldest_are_sent_first():
    user = UserFactory()
    for age in range(5):
        _notification(user, status=Notification.Status.PENDING, age_s=10 * age)

    sent = notifications_deliver(older_than=dt.timedelta(seconds=15))

    assert sent == 3  # 20, 30 and 40 s old; the 0 and 10 s old ones wait
    assert [m.subject for m in mail.outbox] == ["subject 40", "subject 30", "subject 20"]
