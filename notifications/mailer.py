"""The mailer: the process (`manage.py send_emails`) that e-mails customers, off the path that
handles events, so a mail server that is down, silent or slow never holds up an order.

It claims due notifications in batches, sends each batch over one connection
(notifications.delivery) and records every outcome. Until a server accepts an e-mail it is
tried again with exponential backoff and jitter (EMAIL_RETRY_BASE_S doubling up to
EMAIL_RETRY_MAX_S) for EMAIL_RETRY_WINDOW_S, then it is a dead letter; an SMTP 5xx answer makes
it one at once. While the server does not answer, the mailer itself backs off (up to
SERVER_PAUSE_MAX_S) and then checks it; the moment it answers again, every waiting e-mail is due
at once, with no operator step. It wakes when the notifications group commits
(notifications.wakeup) and polls every EMAIL_POLL_INTERVAL_S as a backstop. It beats like the
relay and the consumers, and stops cleanly on SIGTERM after the batch in hand.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from eventbus.redis.transport import Transport, TransportUnavailable
from eventbus.runtime.heartbeats import Heartbeat
from eventbus.runtime.logcontext import bound
from eventbus.runtime.worker import Worker
from notifications import services, wakeup
from notifications.delivery import Failure, KeptConnection, Outcome, send_batch, server_answers
from notifications.metrics import EMAILS_FAILED, EMAILS_SENT
from notifications.models import Notification

__all__ = ["SERVER_PAUSE_MAX_S", "Mailer", "retry_delay"]

log = logging.getLogger(__name__)

# The longest the mailer waits before it tries a silent or unreachable server again.
SERVER_PAUSE_MAX_S = 30.0


def retry_delay(attempts: int) -> float:
    """Seconds until the next try of an e-mail that failed `attempts` times (1, 2, ...):
    EMAIL_RETRY_BASE_S doubling, capped at EMAIL_RETRY_MAX_S, with jitter (half to all of it)
    so e-mails that failed together do not all come back together."""
    ceiling = min(settings.EMAIL_RETRY_BASE_S * 2 ** min(attempts - 1, 30), settings.EMAIL_RETRY_MAX_S)
    return ceiling * random.uniform(0.5, 1.0)  # jitter


def _about(n: Notification) -> str:
    return f"order {n.order_id} (correlation {n.correlation_id or '-'})"


class Mailer(Worker):
    """Sends due e-mails until stopped. The command builds one and calls `run()`."""

    outage_consequence = "e-mails wait in the database meanwhile; retrying"

    def __init__(
        self, *, batch_size: int | None = None, poll_interval: float | None = None, transport: Transport | None = None
    ) -> None:
        super().__init__(transport=transport)
        self.batch_size = batch_size or settings.EMAIL_BATCH_SIZE
        self.poll_interval = settings.EMAIL_POLL_INTERVAL_S if poll_interval is None else poll_interval
        self.rate_per_s = settings.EMAIL_RATE_PER_S
        # A claim outlives the slowest batch the settings allow, so no other mailer takes it meanwhile.
        per_email = (settings.EMAIL_TIMEOUT or 60.0) + (1.0 / self.rate_per_s if self.rate_per_s > 0 else 0.0)
        self.claim_for = dt.timedelta(seconds=60 + self.batch_size * per_email)
        self.name = f"mailer-{socket.gethostname()}-{os.getpid()}"
        self.sent = self.retried = self.dead = 0
        self._started_at = time.time()
        self._last_batch_at: float | None = None
        self._in_hand = 0
        self._idle = False
        self._down: Failure | None = None  # the server's failure, while it does not answer
        self._down_since = 0.0
        self._down_tries = 0
        self._pause_until = 0.0
        self._wakeups: Any = None  # the subscription to wake-ups (notifications.wakeup)
        self.outgoing = KeptConnection()  # one session from batch to batch

    @property
    def who(self) -> str:
        return "the mailer"

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            role="mailer", name=self.name, started_at=self._started_at, last_batch_at=self._last_batch_at,
            batch_size=self._in_hand, processed=self.sent, retries=self.retried, dead=self.dead,
        )  # fmt: skip

    def run(self, *, once: bool = False) -> int:
        """Send until stopped (or, with once=True, until nothing is due). Returns how many
        e-mails a server accepted meanwhile."""
        before = self.sent
        log.info(
            "mailer started (batch %d, timeout %gs, rate %s, retry window %gs)", self.batch_size,
            settings.EMAIL_TIMEOUT, f"{self.rate_per_s:g}/s" if self.rate_per_s else "unlimited",
            settings.EMAIL_RETRY_WINDOW_S,
        )  # fmt: skip
        try:
            self.loop(once=once)
        finally:
            self._close_wakeups()
            self.outgoing.close()
        log.info("mailer stopped: %d e-mails sent, %d retries scheduled, %d dead", self.sent, self.retried, self.dead)
        return self.sent - before

    # --- one step ---------------------------------------------------------------------------

    def step(self, *, once: bool) -> bool:
        self._idle = False
        if self._down and time.monotonic() < self._pause_until:
            self._idle = True
            return True
        batch = services.notifications_claim_due(limit=self.batch_size, claim_for=self.claim_for)
        if not batch:
            if self._down and self._probe():
                return False  # the server is back: what waited is due now
            self._idle = True
            return True
        self._in_hand = len(batch)
        self.beat(force=True)
        try:
            self._record(send_batch(batch, self.outgoing, rate_per_s=self.rate_per_s, between=self.beat))
        finally:
            self._in_hand = 0
            self._last_batch_at = time.time()
        return len(batch) < self.batch_size

    def between_steps(self) -> None:
        if not self._idle:
            return
        self.outgoing.close_if_idle()
        if self._down:
            wait = min(max(self._pause_until - time.monotonic(), 0.0), self.poll_interval * 4) or self.poll_interval
            self.interruptibly(lambda: time.sleep(wait), otherwise=None)
            return
        try:
            if self._wakeups is None:
                self._wakeups = wakeup.subscribe(self.transport)
            wakeups = self._wakeups
            self.interruptibly(lambda: wakeups.wait(self.poll_interval), otherwise=False)
        except TransportUnavailable:  # the mailer needs no Redis to send: poll until it is back
            self._close_wakeups()
            self.interruptibly(lambda: time.sleep(self.poll_interval), otherwise=None)

    def _close_wakeups(self) -> None:
        if self._wakeups is not None:
            self._wakeups.close()
            self._wakeups = None

    # --- outcomes ---------------------------------------------------------------------------

    def _record(self, outcome: Outcome) -> None:
        if outcome.sent:
            services.notifications_sent(accepted=outcome.sent)
            EMAILS_SENT.inc(len(outcome.sent))
            self.sent += len(outcome.sent)
            for n in outcome.sent if log.isEnabledFor(logging.DEBUG) else ():
                with bound(order_id=n.order_id, correlation_id=n.correlation_id, event_id=n.event_id):
                    log.debug("e-mail for %s accepted (attempt %d)", _about(n), n.attempts + 1)
            self._server_back()
        now = timezone.now()
        window = dt.timedelta(seconds=settings.EMAIL_RETRY_WINDOW_S)
        later: dict[str, dict[Notification, dt.datetime]] = {}
        for n, failure in outcome.failed:
            over = not failure.final and now >= (n.queued_at or n.created_at) + window
            with bound(order_id=n.order_id, correlation_id=n.correlation_id, event_id=n.event_id):
                if failure.final or over:
                    error = f"not accepted within {window}: {failure.error}" if over else failure.error
                    services.notifications_give_up(notifications=[n], error=error)
                    EMAILS_FAILED.labels("window" if over else failure.reason, "dead").inc()
                    self.dead += 1
                    log.warning(
                        "e-mail for %s is a dead letter after %d attempt(s): %s", _about(n), n.attempts + 1, error
                    )
                    continue
                delay = retry_delay(n.attempts + 1)
                later.setdefault(failure.error, {})[n] = now + dt.timedelta(seconds=delay)
                EMAILS_FAILED.labels(failure.reason, "retry").inc()
                self.retried += 1
                level = logging.DEBUG if outcome.server_failure else logging.WARNING  # the server's line says it
                log.log(level, "e-mail for %s not accepted (attempt %d), next try in %.0fs: %s", _about(n),
                        n.attempts + 1, delay, failure.error)  # fmt: skip
        for error, due in later.items():
            services.notifications_retry_later(due=due, error=error)
        if outcome.server_failure:
            self._server_down(outcome.server_failure, waiting=len(outcome.failed) + len(outcome.untried))
        if outcome.untried:
            pause = max(self._pause_until - time.monotonic(), 0.0)
            services.notifications_release(notifications=outcome.untried, due_at=now + dt.timedelta(seconds=pause))

    def _server_down(self, failure: Failure, *, waiting: int) -> None:
        self._down_tries += 1
        pause = min(settings.EMAIL_RETRY_BASE_S * 2 ** min(self._down_tries - 1, 10), SERVER_PAUSE_MAX_S)
        pause *= random.uniform(0.5, 1.0)  # jitter
        self._pause_until = time.monotonic() + pause
        if self._down is None:
            self._down, self._down_since = failure, time.monotonic()
            log.warning(
                "the mail server does not accept e-mail (%s): e-mails wait and are retried, the first %d of them "
                "in about %.0fs; check EMAIL_URL and the server", failure.error, waiting, pause,
            )  # fmt: skip

    def _server_back(self) -> None:
        if self._down is None:
            return
        due = services.notifications_due_now()
        log.warning(
            "the mail server accepts e-mail again after %.0fs; %d waiting e-mail(s) are due now",
            time.monotonic() - self._down_since, due,
        )  # fmt: skip
        self._down, self._down_tries, self._pause_until = None, 0, 0.0

    def _probe(self) -> bool:
        """Nothing is due while the server is down: ask it whether it answers again."""
        failure = server_answers()
        if failure is None:
            self._server_back()
            return True
        self._server_down(failure, waiting=0)
        return False
