"""Every customer hears back: the mailer sends each notification's e-mail to a real SMTP server
until it is accepted, exactly once, whether the server is down, silent, refusing for now,
refusing for good or slow; and a server that comes back gets every waiting e-mail."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from notifications import delivery
from notifications import mailer as mailer_module
from notifications.delivery import message_id
from notifications.mailer import Mailer
from notifications.metrics import EMAILS_FAILED, EMAILS_SENT
from notifications.models import Notification
from tests.notifications.smtpserver import SmtpServer
from tests.processes import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailer(transport) -> Mailer:
    return Mailer(poll_interval=0, transport=transport)


def statuses() -> list[str]:
    return sorted(Notification.objects.values_list("status", flat=True))


def send_until_settled(mailer: Mailer, *, timeout: float = 10) -> None:
    """Run the mailer (as its loop would) until nothing waits any more."""

    def settled() -> bool:
        mailer.run(once=True)
        return not Notification.objects.filter(status__in=["pending", "sending"]).exists()

    wait_until(settled, timeout=timeout, what="every e-mail to be sent or given up", interval=0.05)


def test_each_notification_is_emailed_once_with_its_own_stable_message_id(smtp: SmtpServer, mailer, record):
    smtp.start()
    notifications = record(5)

    assert mailer.run(once=True) == 5
    assert mailer.run(once=True) == 0

    assert smtp.by_event() == {str(n.event_id): 1 for n in notifications}
    assert {m["Message-ID"] for m in smtp.received} == {message_id(n) for n in notifications}
    assert {m["X-Order-Id"] for m in smtp.received} == {str(n.order_id) for n in notifications}
    sent = Notification.objects.filter(status="sent", sent_at__isnull=False, attempts=1, next_attempt_at__isnull=True)
    assert sent.count() == 5


def test_recording_a_notification_sends_nothing_until_the_mailer_runs(record):
    record(2)

    assert mail.outbox == []
    assert statuses() == ["pending", "pending"]
    assert Notification.objects.filter(next_attempt_at__lte=timezone.now(), attempts=0).count() == 2


def test_while_the_server_is_down_emails_wait_and_when_it_comes_back_every_one_goes_out_once(
    smtp: SmtpServer, mailer, record
):
    notifications = record(3)
    failed_before = EMAILS_FAILED.labels("connection", "retry")._value.get()

    mailer.run(once=True)

    assert statuses() == ["pending"] * 3
    waiting = Notification.objects.all()
    assert all(n.attempts == 1 and n.next_attempt_at > n.created_at and "Connection" in n.error for n in waiting)
    assert EMAILS_FAILED.labels("connection", "retry")._value.get() == failed_before + 3

    smtp.start()
    send_until_settled(mailer)

    assert smtp.by_event() == {str(n.event_id): 1 for n in notifications}
    assert statuses() == ["sent"] * 3


def test_a_server_that_comes_back_gets_the_waiting_emails_at_once_not_at_the_end_of_their_backoff(
    smtp: SmtpServer, mailer, record, settings, monkeypatch
):
    settings.EMAIL_RETRY_BASE_S = settings.EMAIL_RETRY_MAX_S = 3600  # each e-mail's own next try: an hour away
    monkeypatch.setattr(mailer_module, "SERVER_PAUSE_MAX_S", 0.05)  # the mailer checks the server again soon
    record(4)
    mailer.run(once=True)
    assert Notification.objects.filter(next_attempt_at__gt=timezone.now() + dt.timedelta(minutes=20)).count() == 4

    smtp.start()
    time.sleep(0.1)
    mailer.run(once=True)

    assert len(smtp.received) == 4
    assert statuses() == ["sent"] * 4


def test_a_4xx_answer_is_tried_again_later_and_the_email_goes_out_once_accepted(smtp: SmtpServer, mailer, record):
    smtp.start("4xx")
    (notification,) = record(1)

    mailer.run(once=True)

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", 1)
    assert "451" in notification.error
    assert smtp.received == []

    smtp.start("accept")
    send_until_settled(mailer)
    assert smtp.by_event() == {str(notification.event_id): 1}


def test_a_5xx_answer_makes_a_dead_letter_that_a_replay_sends_once(smtp: SmtpServer, mailer, record):
    smtp.start("5xx")
    (notification,) = record(1)
    dead_before = EMAILS_FAILED.labels("permanent", "dead")._value.get()

    mailer.run(once=True)
    mailer.run(once=True)

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("dead", 1), "never retried"
    assert "550" in notification.error
    assert EMAILS_FAILED.labels("permanent", "dead")._value.get() == dead_before + 1

    smtp.start("accept")
    call_command("send_emails", "--replay-dead")
    mailer.run(once=True)

    assert smtp.by_event() == {str(notification.event_id): 1}
    notification.refresh_from_db()
    assert notification.status == "sent"


def test_a_silent_server_costs_one_timeout_per_batch_and_the_emails_wait(smtp: SmtpServer, mailer, record):
    smtp.silent()
    record(10)

    started = time.monotonic()
    mailer.run(once=True)
    took = time.monotonic() - started

    assert took < 5, f"the mailer hung for {took:.1f} s on a silent server (EMAIL_TIMEOUT is 1 s)"
    assert statuses() == ["pending"] * 10
    assert all("EMAIL_TIMEOUT" in e for e in Notification.objects.values_list("error", flat=True))

    smtp.start()
    send_until_settled(mailer)
    assert len(smtp.received) == 10
    assert max(smtp.by_event().values()) == 1


def test_a_slow_server_gets_every_email_once(smtp: SmtpServer, mailer, record):
    smtp.slow_s = 0.3  # under EMAIL_TIMEOUT (1 s)
    smtp.start("slow")
    notifications = record(3)

    mailer.run(once=True)

    assert smtp.by_event() == {str(n.event_id): 1 for n in notifications}
    assert statuses() == ["sent"] * 3
    accepted = sorted(Notification.objects.values_list("sent_at", flat=True))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(accepted)]
    assert min(gaps) >= 0.25, "each e-mail's sent_at is when the server accepted that one"


def test_an_email_not_accepted_within_the_retry_window_becomes_a_dead_letter(
    smtp: SmtpServer, mailer, record, settings
):
    settings.EMAIL_RETRY_WINDOW_S = 60
    (notification,) = record(1)
    Notification.objects.update(queued_at=timezone.now() - dt.timedelta(seconds=61))

    mailer.run(once=True)

    notification.refresh_from_db()
    assert notification.status == "dead"
    assert notification.error.startswith("not accepted within 0:01:00")


def test_a_customer_without_an_address_is_a_dead_letter_and_the_others_are_sent(smtp: SmtpServer, mailer, record):
    smtp.start()
    (nobody,) = record(1)
    nobody.user.email = ""
    nobody.user.save()
    others = record(2)

    mailer.run(once=True)

    assert Notification.objects.get(pk=nobody.pk).status == "dead"
    assert smtp.by_event() == {str(n.event_id): 1 for n in others}


def test_the_send_rate_is_kept(smtp: SmtpServer, transport, record, settings):
    settings.EMAIL_RATE_PER_S = 20
    smtp.start()
    record(6)

    started = time.monotonic()
    Mailer(poll_interval=0, transport=transport).run(once=True)

    assert time.monotonic() - started >= 5 / 20, "six e-mails at 20/s take at least a quarter of a second"
    assert len(smtp.received) == 6


def test_every_log_line_about_an_email_names_its_order_and_correlation(smtp: SmtpServer, mailer, record, caplog):
    smtp.start("4xx")
    (notification,) = record(1)

    with caplog.at_level(logging.WARNING, logger="notifications.mailer"):
        mailer.run(once=True)

    lines = [r for r in caplog.records if "e-mail for" in r.getMessage()]
    assert lines
    for r in lines:
        assert str(notification.order_id) in r.getMessage()
        assert str(notification.correlation_id) in r.getMessage()


def test_sent_emails_are_counted(smtp: SmtpServer, mailer, record):
    smtp.start()
    record(2)
    before = EMAILS_SENT._value.get()

    mailer.run(once=True)

    assert EMAILS_SENT._value.get() == before + 2


def test_one_smtp_session_carries_batch_after_batch(smtp: SmtpServer, transport, record):
    """A trickle of orders makes a batch of one or two e-mails each: they share one session."""
    smtp.start()
    mailer = Mailer(batch_size=2, poll_interval=0, transport=transport)
    record(2)
    mailer.step(once=True)
    record(1)
    mailer.step(once=True)
    record(3)
    mailer.run(once=True)  # two more batches, then it stops and says QUIT

    assert len(smtp.received) == 6
    assert len(smtp.sessions) == 1
    assert mailer.outgoing.opened == 1
    assert statuses() == ["sent"] * 6


def test_a_session_the_server_dropped_while_idle_is_replaced_and_nothing_fails(
    smtp: SmtpServer, transport, record, monkeypatch
):
    monkeypatch.setattr(delivery, "CHECK_AFTER_IDLE_S", 0.0)  # check the session before every batch
    smtp.start()
    mailer = Mailer(poll_interval=0, transport=transport)
    record(1)
    mailer.step(once=True)
    smtp.stop()  # the server goes away and comes back: the session the mailer keeps is dead
    smtp.start()
    record(2)
    mailer.step(once=True)

    assert len(smtp.received) == 3
    assert mailer.outgoing.opened == 2
    assert mailer.retried == 0
    assert mailer.dead == 0
    assert set(Notification.objects.values_list("status", "attempts", "error")) == {("sent", 1, "")}
    mailer.outgoing.close()


def test_a_session_unused_for_longer_than_the_keepalive_is_closed(smtp: SmtpServer):
    smtp.start()
    kept = delivery.KeptConnection(keepalive_s=0.2)
    first = kept.get()
    kept.used()
    kept.close_if_idle()
    assert first.connection is not None, "still in use"

    time.sleep(0.3)
    kept.close_if_idle()
    assert first.connection is None, "closed (QUIT) once idle past the keepalive"
    assert kept.get() is not first
    assert kept.opened == 2
    kept.close()
