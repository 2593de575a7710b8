"""The failure policy of a consumer group: what becomes of a message that could not be applied.

- A failure a retry may fix is retried with exponential backoff and full jitter. The schedule
  lives in Redis (eventbus.redis.retry_store) and the message stays in the group's pending list, so a
  restart keeps both and the other messages keep flowing.
- A newer version of an event than the consumer knows waits for the consumer to be upgraded:
  retried with the same backoff, its deliveries not counted as attempts, until
  EVENTBUS["NEWER_VERSION_WAIT_S"] after it first failed.
- After the last attempt, at the end of that wait, or at once for an error no retry can fix, it
  is dead-lettered: a DeadLetter row, a copy on the group's dead-letter stream, then acknowledged.
  No retry fixes a PermanentError, nor a value the database or Python refuses whatever the moment
  (`cannot_succeed`: a DataError such as an integer out of range, an invalid decimal, a
  ValueError or TypeError from a bad payload, a validation error).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, DataError

from eventbus.messages.events import Envelope, NewerEventVersion, PermanentError
from eventbus.redis.client import text
from eventbus.redis.retry_store import MessageKey
from eventbus.redis.transport import Message, Transport
from eventbus.runtime.worker import DatabaseUnavailable
from eventbus.store.deadletters import deadletter_record, fields_as_text

__all__ = [
    "Failure", "FailurePolicy", "Outcome", "RetryPolicy", "cannot_succeed", "error_text", "event_type",
    "message_fields", "one_line",
]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_NEWER_VERSION_WAIT_S = 3600.0

# Errors that say the message itself is wrong: the same message fails the same way every time.
# (A DataError is a value the column cannot hold; a broken connection is an OperationalError.)
_CANNOT_SUCCEED = (PermanentError, DataError, decimal.InvalidOperation, ValueError, TypeError, ValidationError)


def cannot_succeed(error: BaseException | str) -> bool:
    """Whether no retry can fix this error, so the message goes to the dead letters at once."""
    return isinstance(error, _CANNOT_SUCCEED)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**(n-1)))."""

    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int = 5

    @classmethod
    def for_group(cls, group: str) -> RetryPolicy:
        """EVENTBUS["RETRY"]["default"], with the group's own entries on top."""
        table = settings.EVENTBUS.get("RETRY", {})
        return cls(**{**table.get("default", {}), **table.get(group, {})})

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the next attempt after `attempt` failed ones."""
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** max(attempt - 1, 0)))


@dataclass
class Failure:
    """One message that failed this delivery. `attempts` is Redis's delivery count."""

    message: Message
    error: BaseException | str
    traceback: str
    attempts: int
    envelope: Envelope | None = None
    permanent: bool = False

    @property
    def key(self) -> MessageKey:
        return (self.message.stream, self.message.id)

    @property
    def newer_version(self) -> NewerEventVersion | None:
        return self.error if isinstance(self.error, NewerEventVersion) else None


@dataclass
class Outcome:
    """What `settle` did with a batch's failures."""

    retried: int = 0
    waiting: int = 0
    dead: int = 0
    next_due: float | None = None  # when the soonest retry it scheduled is due (epoch seconds)
    by_type: Counter[tuple[str, str]] = field(default_factory=Counter)  # (event type, "retry" | "dead") -> n


class FailurePolicy:
    """Settles one consumer group's failures: retry, wait for an upgrade, or dead-letter."""

    def __init__(self, group: str, transport: Transport, retry: RetryPolicy, *, newer_version_wait_s: float) -> None:
        self.group = group
        self.transport = transport
        self.retry = retry
        self.newer_version_wait_s = newer_version_wait_s

    def settle(self, failures: Sequence[Failure]) -> Outcome:
        """Schedule a retry for each failure, or dead-letter it (see the module docstring).

        Guarantees: no failure is dropped: each is either scheduled (and stays pending) or has
        a DeadLetter row before it is acknowledged. Two Redis round trips for any number of
        retries; deliveries spent waiting for a newer version are not counted as attempts.
        """
        outcome = Outcome()
        if not failures:
            return outcome
        now = time.time()
        waiting = [f.key for f in failures if f.newer_version]
        first, waits = self.transport.retries.note_failures(self.group, [f.key for f in failures], now, waiting=waiting)
        due: dict[MessageKey, float] = {}
        newer: set[str] = set()
        for f in failures:
            version = f.newer_version
            attempts = f.attempts - waits[f.key]
            if version is not None:
                waited_s = now - first[f.key]
                if waited_s >= self.newer_version_wait_s:
                    error = (
                        f"NewerEventVersion: {version}; waited {waited_s:.0f} s for this consumer to be upgraded "
                        f'(EVENTBUS["NEWER_VERSION_WAIT_S"] = {self.newer_version_wait_s:g}): upgrade it, then '
                        "replay this dead letter"
                    )
                    self._dead_letter(f, error, f.attempts, first[f.key])
                    outcome.dead += 1
                    outcome.by_type[(event_type(f), "dead")] += 1
                    continue
                due[f.key] = now + self.retry.delay(waits[f.key])
                newer.add(f"{version.type} v{version.version} (knows v{version.known})")
                outcome.waiting += 1
                outcome.by_type[(event_type(f), "retry")] += 1
            elif f.permanent or cannot_succeed(f.error) or attempts >= self.retry.max_attempts:
                self._dead_letter(f, error_text(f.error), attempts, first[f.key])
                outcome.dead += 1
                outcome.by_type[(event_type(f), "dead")] += 1
            else:
                delay = self.retry.delay(attempts)
                due[f.key] = now + delay
                outcome.retried += 1
                outcome.by_type[(event_type(f), "retry")] += 1
                log.warning(
                    "group %s: %s failed (attempt %d of %d), retrying in %.2fs: %s",
                    self.group, _describe(f), attempts, self.retry.max_attempts, delay, one_line(f.error),
                    extra=message_fields(f.message, f.envelope, attempts),
                )  # fmt: skip
        if newer:
            log.warning(
                "group %s: %d message(s) of a newer event version than this consumer knows (%s) wait for it "
                "to be upgraded, retried with backoff for up to %g s",
                self.group, outcome.waiting, ", ".join(sorted(newer)), self.newer_version_wait_s,
            )  # fmt: skip
        if due:
            self.transport.retries.schedule(self.group, due)
            outcome.next_due = min(due.values())
        return outcome

    def crashers(self, delivered: Sequence[tuple[Message, Envelope, int]]) -> list[Failure]:
        """Of these (message, envelope, delivery count), the ones delivered more often than the
        policy allows: each delivery ended without a verdict, so a consumer crashed or was killed
        while handling it. Their deliveries spent waiting for a newer event version do not count.
        Returned as permanent failures, to be dead-lettered."""
        limit = self.retry.max_attempts
        over = [d for d in delivered if d[2] > limit]
        waits = self.transport.retries.waits(self.group, [(m.stream, m.id) for m, _, _ in over])
        crashed = []
        for message, envelope, delivered_times in over:
            attempts = delivered_times - waits.get((message.stream, message.id), 0)
            if attempts > limit:
                error = (
                    f"delivered {attempts} times without completing (limit {limit}): "
                    "a consumer crashed or was killed while handling it"
                )
                crashed.append(Failure(message, error, "", delivered_times, envelope=envelope, permanent=True))
        return crashed

    def _dead_letter(self, f: Failure, error: str, attempts: int, first_failed: float) -> None:
        """Record the message as a dead letter, copy it to the dead-letter stream, then
        acknowledge it: in that order, so a crash in between leaves it pending, never lost."""
        version = f.newer_version
        event_id = f.envelope.event_id if f.envelope else version.event_id if version else None
        try:
            row = deadletter_record(
                group=self.group,
                message=f.message,
                error=error,
                traceback=f.traceback,
                attempts=attempts,
                event_id=event_id,
                event_type=event_type(f),
                first_failed_at=dt.datetime.fromtimestamp(first_failed, dt.UTC),
            )
        except DatabaseError as exc:
            # Not recorded, so not acknowledged: it stays pending and comes back.
            raise DatabaseUnavailable(str(exc)) from exc
        fields = fields_as_text(f.message.fields)
        fields.update(
            {
                "deadletter_row": str(row.pk),
                "source_stream": f.message.stream,
                "source_id": f.message.id,
                "error": error[:2000],
            }
        )
        self.transport.dead_letter(self.group, fields)
        self.transport.ack(self.group, {f.message.stream: [f.message.id]})
        self.transport.retries.forget(self.group, [f.key])
        log.error(
            "group %s: %s dead-lettered (row %d): %s", self.group, _describe(f), row.pk, one_line(error),
            extra=message_fields(f.message, f.envelope, attempts),
        )  # fmt: skip


def message_fields(message: Message, envelope: Envelope | None, attempts: int) -> dict[str, object]:
    """What a log line about one message carries (eventbus.runtime.logcontext's event fields)."""
    fields: dict[str, object] = {"stream": message.stream, "message_id": message.id, "attempt": attempts}
    if envelope is not None:
        fields.update(
            event_id=str(envelope.event_id), event_type=envelope.type, aggregate_id=envelope.aggregate_id,
            correlation_id=str(envelope.correlation_id),
            causation_id=str(envelope.causation_id) if envelope.causation_id else None,
        )  # fmt: skip
    return fields


def event_type(f: Failure) -> str:
    """The failed message's event type, as far as it could be read."""
    version = f.newer_version
    return f.envelope.type if f.envelope else version.type if version else _raw_type(f.message)


def error_text(error: BaseException | str) -> str:
    """An error as a dead letter records it: "Type: message"."""
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


def one_line(error: BaseException | str) -> str:
    """An error as one short line of the log."""
    return " ".join(error_text(error).split())[:300]


def _raw_type(m: Message) -> str:
    return text((m.fields or {}).get(b"type", b""))[:100]


def _describe(f: Failure) -> str:
    version = f.newer_version
    kind = f.envelope.type if f.envelope else version.type if version else "message"
    return f"{kind} {f.message.stream}/{f.message.id}"
