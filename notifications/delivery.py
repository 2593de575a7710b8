"""Sending claimed e-mails, and the failure policy.

One connection of the configured backend (EMAIL_BACKEND: SMTP from EMAIL_URL, or any Django
backend such as django-anymail's) is kept open from batch to batch (`KeptConnection`), so a
steady trickle of orders, a batch of one or two e-mails each, goes over one SMTP session rather
than one session per batch; sends are paced to EMAIL_RATE_PER_S; every SMTP step gives up after
EMAIL_TIMEOUT. Each e-mail carries a Message-ID made from its event id, so
a copy sent again after a crash is recognisably the same message.

The policy: a failure that may pass (no connection, no answer in time, a 4xx answer, an HTTP
API's 429 or 5xx, anything unknown) is retried; an answer that says never (an SMTP 5xx, an HTTP
API's other 4xx, no address to send to) is final. A failure that leaves the connection unusable
ends the batch: what was not tried yet goes back untried.
"""

from __future__ import annotations

import datetime as dt
import math
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from notifications.models import Notification

__all__ = ["Failure", "KeptConnection", "Outcome", "classify", "message_id", "send_batch", "server_answers"]

# A session unused for longer than this is checked (SMTP NOOP) before it carries a batch: the
# server may have dropped it meanwhile, and that is no failure of the server.
CHECK_AFTER_IDLE_S = 1.0


@dataclass(frozen=True)
class Failure:
    """Why an e-mail (or the connection) failed."""

    reason: str  # a metric label: connection, timeout, temporary, permanent, no_address, other
    error: str  # the sentence kept on the row and logged
    final: bool = False  # never retried: a dead letter at once
    connection_lost: bool = False  # the connection cannot carry the rest of the batch


@dataclass
class Outcome:
    """What became of a claimed batch."""

    sent: dict[Notification, dt.datetime] = field(default_factory=dict)  # -> when the server accepted it
    failed: list[tuple[Notification, Failure]] = field(default_factory=list)
    untried: list[Notification] = field(default_factory=list)
    # The server could not be reached or dropped the connection before accepting anything.
    server_failure: Failure | None = None


def message_id(notification: Notification) -> str:
    """The e-mail's Message-ID, the same for every copy of one notification."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "eventshop.invalid"
    return f"<{notification.event_id}@{domain}>"


def _smtp_code(exc: BaseException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return max(codes) if codes else None
    return getattr(exc, "smtp_code", None)


def classify(exc: BaseException) -> Failure:
    """The failure policy (see the module's docstring)."""
    text = f"{type(exc).__name__}: {exc}"[:1000]
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):  # smtplib wraps some
        return Failure("timeout", f"no answer within EMAIL_TIMEOUT ({settings.EMAIL_TIMEOUT:g} s): {text}",
                       connection_lost=True)  # fmt: skip
    if isinstance(exc, (smtplib.SMTPServerDisconnected, ssl.SSLError, ConnectionError)):
        return Failure("connection", text, connection_lost=True)
    if isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPConnectError, smtplib.SMTPHeloError)):
        # The server or our settings, not this e-mail: wait for someone to fix it.
        return Failure("connection", text, connection_lost=True)
    code = _smtp_code(exc)
    if code is not None and code > 0:
        if 500 <= code < 600:
            return Failure("permanent", text, final=True)
        return Failure("temporary", text, connection_lost=code == 421)  # 421: the server closes the channel
    status = getattr(exc, "status_code", None)  # an HTTP API's backend (django-anymail and the like)
    if isinstance(status, int):
        if status == 429 or status >= 500:
            return Failure("temporary", text)
        if 400 <= status < 500:
            return Failure("permanent", text, final=True)
    if isinstance(exc, OSError | smtplib.SMTPException):
        return Failure("connection", text, connection_lost=True)
    return Failure("other", text, connection_lost=True)


NO_ADDRESS = Failure("no_address", "the customer has no e-mail address", final=True)


def _message(n: Notification, connection: object) -> EmailMessage:
    return EmailMessage(
        n.subject, n.body, settings.DEFAULT_FROM_EMAIL, [n.user.email], connection=connection,
        headers={"Message-ID": message_id(n), "X-Event-Id": str(n.event_id), "X-Order-Id": str(n.order_id)},
    )  # fmt: skip


class KeptConnection:
    """One connection of the e-mail backend, kept open from batch to batch and closed once it
    has carried nothing for EMAIL_KEEPALIVE_S (mail servers drop idle sessions after a while:
    RFC 5321 asks for at least 5 minutes, some providers wait less). Before a session idle for
    more than CHECK_AFTER_IDLE_S carries a batch it is asked for a NOOP, and replaced if the
    server has dropped it. Backends without a session (an HTTP API's, the console) just stay
    as they are."""

    def __init__(self, keepalive_s: float | None = None) -> None:
        self.keepalive_s = settings.EMAIL_KEEPALIVE_S if keepalive_s is None else keepalive_s
        self.opened = 0  # connections opened so far
        self._connection: BaseEmailBackend | None = None
        self._used_at = -math.inf

    def get(self) -> BaseEmailBackend:
        """The open connection, opened now if there is none. Raises whatever the backend raises
        when it cannot open one."""
        self.close_if_idle()
        idle = time.monotonic() - self._used_at
        if self._connection is not None and idle > CHECK_AFTER_IDLE_S and not _still_open(self._connection):
            self.drop()
        if self._connection is None:
            connection = get_connection(fail_silently=False)
            connection.open()
            self._connection = connection
            self.opened += 1
        return self._connection

    def used(self) -> None:
        self._used_at = time.monotonic()

    def close_if_idle(self) -> None:
        if self._connection is not None and time.monotonic() - self._used_at > self.keepalive_s:
            self.close()

    def close(self) -> None:
        """Close it politely (SMTP QUIT)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - a connection that broke closes badly; nothing to save
                _drop(connection)

    def drop(self) -> None:
        """Forget a broken connection without a word to a server that would not answer either."""
        connection, self._connection = self._connection, None
        if connection is not None:
            _drop(connection)


def _still_open(connection: BaseEmailBackend) -> bool:
    smtp = getattr(connection, "connection", None)
    if not isinstance(smtp, smtplib.SMTP):
        return True
    try:
        return smtp.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def send_batch(
    batch: list[Notification],
    kept: KeptConnection,
    *,
    rate_per_s: float = 0.0,
    between: Callable[[], object] | None = None,
) -> Outcome:
    """Send each e-mail of the batch over the kept connection, no faster than rate_per_s (0: no
    limit), calling `between` after each (the mailer's heartbeat). Never raises: every e-mail
    ends in the outcome as sent, failed or untried."""
    outcome = Outcome()
    interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
    try:
        connection = kept.get()
    except Exception as exc:  # noqa: BLE001 - whatever the backend raises, the batch waits
        kept.drop()
        outcome.server_failure = classify(exc)
        outcome.failed = [(n, outcome.server_failure) for n in batch]  # a try for each: the window counts
        return outcome
    next_at = time.monotonic()
    try:
        for i, n in enumerate(batch):
            if between is not None and i:
                between()
            if not n.user.email:
                outcome.failed.append((n, NO_ADDRESS))
                continue
            if interval:
                time.sleep(max(next_at - time.monotonic(), 0.0))
                next_at = max(next_at, time.monotonic() - interval) + interval
            try:
                accepted = connection.send_messages([_message(n, connection)])
            except Exception as exc:  # noqa: BLE001 - recorded on the row by the caller
                failure = classify(exc)
                outcome.failed.append((n, failure))
                if failure.connection_lost:
                    kept.drop()
                    outcome.untried = batch[i + 1 :]
                    if not outcome.sent:
                        outcome.server_failure = failure
                    break
                continue
            if accepted:
                outcome.sent[n] = timezone.now()
            else:  # a backend that reports failure by its count rather than by raising
                outcome.failed.append((n, Failure("other", f"{type(connection).__name__} did not accept it")))
    finally:
        kept.used()
    return outcome


def _drop(connection: object) -> None:
    """Close a broken SMTP connection without a QUIT the server would not answer either (that
    would cost another EMAIL_TIMEOUT)."""
    smtp = getattr(connection, "connection", None)
    if isinstance(smtp, smtplib.SMTP):
        smtp.close()
        connection.connection = None  # type: ignore[attr-defined]


def server_answers() -> Failure | None:
    """Open and close a connection: None if the server answers, the failure otherwise."""
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
        connection.close()
    except Exception as exc:  # noqa: BLE001 - whatever the backend raises
        return classify(exc)
    return None
