"""A mailer claims what it sends: no two mailers send one e-mail, and a mailer that died with
e-mails in hand leaves them to the next one when its claim runs out."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time

import pytest
from django.db import connection, connections
from django.utils import timezone

from eventbus.runtime.worker import ShutdownRequested
from notifications.mailer import Mailer
from notifications.models import Notification
from notifications.services import notifications_claim_due
from notifications.wakeup import wake_mailers
from tests.notifications.smtpserver import SmtpServer
from tests.processes import wait_until

CLAIM = dt.timedelta(minutes=5)


@pytest.mark.django_db
def test_claimed_emails_are_nobody_elses_until_the_claim_runs_out(record):
    record(3)

    first = notifications_claim_due(limit=2, claim_for=CLAIM)
    second = notifications_claim_due(limit=10, claim_for=CLAIM)

    assert len(first) == 2
    assert len(second) == 1
    assert not {n.pk for n in first} & {n.pk for n in second}
    assert notifications_claim_due(limit=10, claim_for=CLAIM) == []
    assert sorted(Notification.objects.values_list("status", flat=True)) == ["sending"] * 3


@pytest.mark.django_db
def test_a_dead_mailers_claim_runs_out_and_another_mailer_sends_the_email(smtp: SmtpServer, record, transport):
    smtp.start()
    (notification,) = record(1)
    notifications_claim_due(limit=10, claim_for=CLAIM)  # ... and the mailer is killed before it sends
    assert Mailer(poll_interval=0, transport=transport).run(once=True) == 0, "claimed: not due yet"

    Notification.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))  # the claim runs out
    Mailer(poll_interval=0, transport=transport).run(once=True)

    assert smtp.by_event() == {str(notification.event_id): 1}


@pytest.mark.django_db
def test_emails_waiting_longest_are_claimed_first(record):
    _, retried = record(2)  # the second was recorded later, but has been due for a minute
    Notification.objects.filter(pk=retried.pk).update(next_attempt_at=timezone.now() - dt.timedelta(minutes=1))

    (claimed,) = notifications_claim_due(limit=1, claim_for=CLAIM)

    assert claimed.pk == retried.pk


@pytest.mark.django_db(transaction=True)
def test_three_mailers_at_once_send_every_email_exactly_once(smtp: SmtpServer, record, transport, settings):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED claims need PostgreSQL; embedded mode runs one mailer")
    settings.EMAIL_BATCH_SIZE = 10
    smtp.start()
    notifications = record(150)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Mailer(poll_interval=0, transport=transport).run(once=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not errors
    assert smtp.by_event() == {str(n.event_id): 1 for n in notifications}
    assert Notification.objects.filter(status="sent").count() == 150


@pytest.mark.django_db(transaction=True)
def test_a_waiting_mailer_is_woken_by_the_commit_of_a_notification_not_by_its_poll(smtp: SmtpServer, record, transport):
    smtp.start()
    mailer = Mailer(poll_interval=30, transport=transport)

    def run() -> None:
        try:
            mailer.run()
        finally:
            connections.close_all()  # this thread's own

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.5)  # the mailer found nothing and waits: for a wake-up, or 30 s
        (notification,) = record(1)
        wait_until(lambda: len(smtp.received) == 1, timeout=5, what="the e-mail, long before the 30 s poll")
    finally:
        with contextlib.suppress(ShutdownRequested):  # meant for a signal handler in its own thread
            mailer.request_stop()
        wake_mailers([])  # end its wait now rather than at the poll
        thread.join(timeout=10)
    assert smtp.by_event() == {str(notification.event_id): 1}
