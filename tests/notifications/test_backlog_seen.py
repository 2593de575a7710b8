"""The e-mail backlog is seen: in `manage.py status` (and its exit code), the operations
console's state, and the metrics' gauges."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from dashboard.console import console_state
from eventbus.runtime.status import pipeline_status
from notifications.metrics import EmailCollector
from notifications.models import Notification

pytestmark = pytest.mark.django_db


def gauges() -> dict[str, float]:
    return {m.name: m.samples[0].value for m in EmailCollector().collect()}


def test_waiting_and_dead_emails_are_in_the_status_the_console_and_the_gauges(record, transport):
    waiting = record(3)
    Notification.objects.filter(pk=waiting[0].pk).update(created_at=timezone.now() - dt.timedelta(seconds=90))
    Notification.objects.filter(pk=waiting[1].pk).update(status="dead", error="550 No such mailbox")

    email = pipeline_status(transport=transport).extras["email"]

    assert (email["waiting"], email["dead"]) == (2, 1)
    assert 89 < email["oldest_age_s"] < 120
    assert email["summary"].startswith("E-mail: 2 waiting, oldest")
    assert console_state()["email"]["waiting"] == 2
    values = gauges()
    assert values["eventshop_emails_waiting"] == 2
    assert values["eventshop_emails_dead"] == 1
    assert 89 < values["eventshop_emails_oldest_waiting_age_seconds"] < 120


def test_status_fails_when_the_oldest_waiting_email_is_past_its_age(record, settings):
    settings.EMAIL_MAX_AGE_S = 60
    record(1)
    Notification.objects.update(created_at=timezone.now() - dt.timedelta(seconds=120))
    out = io.StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("status", stdout=out)

    assert exited.value.code == 1
    assert "E-mail: 1 waiting" in out.getvalue()
    assert "PROBLEM: the oldest waiting e-mail is 120 s old" in out.getvalue()


def test_status_says_when_emails_wait_and_no_mailer_is_alive(record, transport):
    record(1)

    problems = pipeline_status(transport=transport).problems

    assert any(p.startswith("no mailer is alive and 1 e-mail(s) wait") for p in problems)


def test_nothing_waiting_is_no_problem_of_the_emails(transport):
    status = pipeline_status(transport=transport)

    assert status.extras["email"]["waiting"] == 0
    assert not [p for p in status.problems if "e-mail" in p]
