"""Notifications reads."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Min, QuerySet

from notifications.models import Notification


def notification_list(*, user: AbstractBaseUser) -> QuerySet[Notification]:
    """The user's own notifications, newest first."""
    return Notification.objects.filter(user=user)


@dataclass(frozen=True)
class EmailBacklog:
    waiting: int  # not yet accepted by a mail server (pending or being sent)
    oldest_age_s: float  # how long the oldest of them has waited, 0 when none
    dead: int  # given up: dead letters until replayed


def email_backlog() -> EmailBacklog:
    """The e-mails not sent yet (two index-only reads of notification_unsent)."""
    waiting = Notification.objects.filter(
        status__in=[Notification.Status.PENDING, Notification.Status.SENDING]
    ).aggregate(n=Count("id"), oldest=Min("created_at"))
    oldest = waiting["oldest"]
    return EmailBacklog(
        waiting=waiting["n"],
        oldest_age_s=round(max(time.time() - oldest.timestamp(), 0.0), 3) if oldest else 0.0,
        dead=Notification.objects.filter(status=Notification.Status.DEAD).count(),
    )


def email_status(status: Any) -> tuple[dict[str, Any], list[str]]:
    """The e-mail backlog for `manage.py status` and the operations console, and what is wrong:
    e-mails waiting past EMAIL_MAX_AGE_S, or waiting with no mailer alive."""
    backlog = email_backlog()
    mailers = sum(1 for p in status.processes if p.role == "mailer")
    summary = (
        f"E-mail: {backlog.waiting} waiting, oldest {backlog.oldest_age_s:.1f} s old, {backlog.dead} dead "
        f"(`send_emails --replay-dead` queues them again), {mailers} mailer(s) alive"
    )
    problems = []
    if backlog.oldest_age_s > settings.EMAIL_MAX_AGE_S:
        problems.append(
            f"the oldest waiting e-mail is {backlog.oldest_age_s:.0f} s old: is the mail server up (EMAIL_URL)? "
            "see the mailer's log"
        )
    if backlog.waiting and not mailers and status.redis == "ok":
        problems.append(f"no mailer is alive and {backlog.waiting} e-mail(s) wait: start `manage.py send_emails`")
    return {**asdict(backlog), "mailers": mailers, "summary": summary}, problems
