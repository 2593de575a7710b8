"""Applying a batch of messages with effectively-once effects: the inbox and the transaction.

Per batch of messages:
  1. decode each one: a malformed one, or one of an unknown type, fails for good; one of a
     newer version than this process knows fails until it is upgraded; one of a type the group
     does not handle is acknowledged and skipped;
  2. open one database transaction, record the batch's event ids in the inbox with a single
     INSERT that also says which ones are new, and run the handlers of the new ones; if one
     raises, roll back and apply the messages one by one, each in its own savepoint, so a
     failing handler undoes only its own writes;
  3. commit, and only then acknowledge (XACK) the messages whose effects committed;
  4. hand the failures to the group's failure policy (eventbus.store.failures).
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Sequence

from django.db import DatabaseError, transaction
from django.utils import timezone

import bulk
from eventbus.messages import registry
from eventbus.messages.events import PermanentError
from eventbus.redis.transport import GroupMissing, Message, Transport
from eventbus.runtime import tracing
from eventbus.runtime.figures import Stats, record_batch
from eventbus.runtime.worker import DatabaseUnavailable, database_broken
from eventbus.store import inbox
from eventbus.store.deadletters import deadletters_resolve, replayed_deadletter_id
from eventbus.store.failures import Failure, FailurePolicy, one_line
from eventbus.store.triage import Work, triage

__all__ = ["BatchProcessor", "Stats"]

log = logging.getLogger(__name__)


class _BatchFailed(Exception):
    """A handler failed while the batch was applied in one transaction (rolled back)."""

    def __init__(self, traceback: str) -> None:
        super().__init__("batch failed")
        self.traceback = traceback


class BatchProcessor:
    """Applies one consumer group's batches. The consumer loop calls `process` for each batch
    it reads or claims, and `resume` first in every step."""

    def __init__(
        self,
        group: str,
        transport: Transport,
        failures: FailurePolicy,
        stats: Stats,
        *,
        consumer: str,
        retry_scheduled: Callable[[float], None],
    ) -> None:
        self.group = group
        self.consumer = consumer
        self.transport = transport
        self.failures = failures
        self.stats = stats
        self._retry_scheduled = retry_scheduled
        self._held: tuple[list[Message], bool] | None = None  # a batch waiting for the database
        self._unacked: dict[str, list[str]] = {}  # committed but not yet acknowledged
        # What the batch in hand did, for the metrics once it committed: (work, "ok" | "duplicate")
        # and (event type, seconds per message, messages) of each handler call.
        self._done: list[tuple[Work, str]] = []
        self._timed: list[tuple[str, float, int]] = []

    def resume(self) -> bool:
        """Finish what an outage interrupted: acknowledge what committed but was not
        acknowledged, then apply again, as it was, a batch the database failed (a re-read would
        count as another delivery). True if there was such a batch."""
        if self._unacked:
            self._ack(self._unacked)
            self._unacked = {}
        if self._held is None:
            return False
        messages, redelivered = self._held
        self.process(messages, redelivered=redelivered)
        return True

    def process(self, messages: Sequence[Message], *, redelivered: bool) -> None:
        """Apply one batch (see the module docstring).

        Guarantees: a message is acknowledged only after the transaction holding its effects
        and its inbox row has committed; one that failed is left pending for its retry or
        dead-lettered, never dropped. If the database fails, the batch is held and
        DatabaseUnavailable raised; `resume` applies exactly this batch again.
        """
        counts = self._delivery_counts(messages) if redelivered else {}
        sorted_out = triage(self.group, messages, counts)
        acks, failures, work = sorted_out.acks, sorted_out.failures, sorted_out.work
        self.stats.skipped += sorted_out.skipped
        if redelivered and any(w.attempts > self.failures.retry.max_attempts for w in work):
            crashed = self.failures.crashers([(w.message, w.envelope, w.attempts) for w in work])
            failures += crashed
            gone = {f.key for f in crashed}
            work = [w for w in work if (w.message.stream, w.message.id) not in gone]

        self._held = (list(messages), redelivered)
        self._done, self._timed = [], []
        started = time.perf_counter()
        if work:
            with tracing.processing(self.group, self.consumer, [(w.message, w.envelope) for w in work]):
                failures += self._apply(work, acks)
        elapsed = time.perf_counter() - started
        self._held = None
        # Committed: from here on a failure only delays the acknowledgement (kept for the next
        # step) or leaves a failed message pending for reclaim; nothing is applied twice.
        self._unacked = acks
        self._ack(acks)
        self._unacked = {}
        if redelivered:  # some may have failed before: forget when they first did
            self.transport.retries.forget(self.group, [(s, i) for s, ids in acks.items() for i in ids])
        outcome = self.failures.settle(failures)
        self.stats.retried += outcome.retried
        self.stats.waiting += outcome.waiting
        self.stats.dead += outcome.dead
        if outcome.next_due is not None:
            self._retry_scheduled(outcome.next_due)
        self._count(len(messages), outcome.by_type, elapsed)

    def _count(self, size: int, failed: Counter[tuple[str, str]], elapsed: float) -> None:
        self.stats.last_batch_at, self.stats.last_batch_size = time.time(), size
        done = [(w.message, w.envelope, w.attempts, outcome) for w, outcome in self._done]
        record_batch(self.group, size, done, failed, self._timed, elapsed)

    def _apply(self, work: list[Work], acks: dict[str, list[str]]) -> list[Failure]:
        """Apply the batch in one transaction; if any handler fails, roll it back and apply the
        messages one by one, each in its own savepoint, so one failure undoes only its own
        writes. Either way the inbox rows commit with the effects."""
        try:
            return self._apply_together(work, acks)
        except _BatchFailed as failed:
            error = failed.__cause__ or failed
            self._timed = []  # the rolled-back attempt's timings
            if len(work) == 1:  # nothing else to save: this attempt of this message failed
                w = work[0]
                permanent = isinstance(error, PermanentError)
                return [
                    Failure(w.message, error, failed.traceback, w.attempts, envelope=w.envelope, permanent=permanent)
                ]
            log.info("group %s: a batch of %d failed (%s); applying it message by message",
                     self.group, len(work), one_line(error))  # fmt: skip
            return self._apply_one_by_one(work, acks)

    def _claim(self, work: list[Work]) -> tuple[list[Work], list[Work]]:
        """Record the batch in the inbox: (new work to apply, work already applied)."""
        claims = [
            inbox.Claim(
                w.envelope.event_id, w.envelope.type, w.envelope.occurred_at, w.envelope.aggregate_id,
                w.envelope.correlation_id, w.message.stream, w.message.id, w.attempts,
            )
            for w in work
        ]  # fmt: skip
        self._batch_id, self._batch_started = uuid.uuid4(), timezone.now()
        new = inbox.claim(self.group, claims, consumer=self.consumer, batch_id=self._batch_id, at=self._batch_started)
        todo, seen = [], []
        for w in work:
            if w.envelope.event_id in new:
                new.discard(w.envelope.event_id)  # a second copy in the same batch is a duplicate
                todo.append(w)
            else:
                seen.append(w)
        return todo, seen

    def _apply_together(self, work: list[Work], acks: dict[str, list[str]]) -> list[Failure]:
        try:
            with transaction.atomic():
                # When every handler of the batch only runs bulk statements, one pipeline from
                # the inbox claim to the last write: BEGIN rides with the claim, the writes go
                # out together before the COMMIT.
                together = all(registry.pipeline_safe(w.handler) for w in work)
                with bulk.pipelined() if together else contextlib.nullcontext():
                    todo, seen = self._claim(work)
                    for handler, run in _runs(todo):
                        started = time.perf_counter()
                        handler([w.envelope for w in run])
                        self._timed.append((run[0].envelope.type, (time.perf_counter() - started) / len(run), len(run)))
                    self._record_batch(len(work))
                deadletters_resolve(_replays(todo + seen))
        except Exception as exc:
            if database_broken(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise _BatchFailed(traceback.format_exc()) from exc
        self.stats.processed += len(todo)
        self.stats.duplicates += len(seen)
        self._done = [(w, "ok") for w in todo] + [(w, "duplicate") for w in seen]
        for w in work:
            acks[w.message.stream].append(w.message.id)
        return []

    def _apply_one_by_one(self, work: list[Work], acks: dict[str, list[str]]) -> list[Failure]:
        failures: list[Failure] = []
        applied: list[Work] = []
        try:
            with transaction.atomic():
                todo, seen = self._claim(work)
                for w in todo:
                    try:
                        started = time.perf_counter()
                        with transaction.atomic():
                            w.handler([w.envelope])
                        self._timed.append((w.envelope.type, time.perf_counter() - started, 1))
                    except Exception as exc:
                        if database_broken(exc):
                            raise DatabaseUnavailable(str(exc)) from exc
                        failures.append(
                            Failure(
                                w.message, exc, traceback.format_exc(), w.attempts, envelope=w.envelope,
                                permanent=isinstance(exc, PermanentError),
                            )
                        )  # fmt: skip
                        continue
                    applied.append(w)
                inbox.release(self.group, [f.envelope.event_id for f in failures if f.envelope])
                self._record_batch(len(work))
                deadletters_resolve(_replays(applied + seen))
        except DatabaseError as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        self.stats.processed += len(applied)
        self.stats.duplicates += len(seen)
        self._done = [(w, "ok") for w in applied] + [(w, "duplicate") for w in seen]
        for w in applied + seen:
            acks[w.message.stream].append(w.message.id)
        return failures

    def _record_batch(self, size: int) -> None:
        duration_ms = 1000 * (timezone.now() - self._batch_started).total_seconds()
        inbox.record_batch(
            self.group, batch_id=self._batch_id, consumer=self.consumer, started_at=self._batch_started,
            duration_ms=duration_ms, size=size,
        )  # fmt: skip

    def _delivery_counts(self, messages: Sequence[Message]) -> dict[tuple[str, str], int]:
        return self.transport.delivery_counts(self.group, [(m.stream, m.id) for m in messages if m.fields is not None])

    def _ack(self, acks: dict[str, list[str]]) -> None:
        try:
            self.transport.ack(self.group, acks)
        except GroupMissing:
            log.warning("group %s vanished before acknowledging; its pending list went with it", self.group)


def _runs(work: list[Work]) -> list[tuple[registry.Handler, list[Work]]]:
    """Consecutive messages with the same handler, in stream order."""
    runs: list[tuple[registry.Handler, list[Work]]] = []
    for w in work:
        if runs and runs[-1][0] is w.handler and runs[-1][1][-1].envelope.type == w.envelope.type:
            runs[-1][1].append(w)
        else:
            runs.append((w.handler, [w]))
    return runs


def _replays(work: list[Work]) -> list[int]:
    return [d for w in work if (d := replayed_deadletter_id(w.message.fields)) is not None]
