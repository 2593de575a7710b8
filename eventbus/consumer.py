"""The consumer runner: one loop per process that reads a consumer group's streams and applies
the group's handlers with effectively-once effects.

Per batch of messages it:
  1. decodes each message (a malformed one, or one of an unknown type or version, goes to dead
     letters at once; one of a type the group does not handle is acknowledged and skipped);
  2. opens one database transaction, records the batch's event ids in the inbox with a single
     INSERT that also says which ones are new, and runs each new event's handler in its own
     savepoint, so a failing handler undoes only its own writes;
  3. commits, and only then acknowledges (XACK) the messages whose effects committed;
  4. schedules each failed message for a retry with exponential backoff and full jitter (the
     schedule lives in Redis, the message stays pending), or after the last attempt parks it as
     a dead letter (a DeadLetter row and the group's dead-letter stream) and acknowledges it.

Around that loop it reads its own pending messages first on start, claims messages left pending
by dead consumers (XAUTOCLAIM), removes consumers idle for long, re-creates a vanished group,
rides out Redis and database outages with backoff, and stops cleanly on request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

import bulk
from eventbus import inbox, registry
from eventbus.deadletters import deadletter_record, deadletters_resolve, replayed_deadletter_id
from eventbus.events import Envelope, PermanentError, decode
from eventbus.outage import Outage
from eventbus.transport import GroupMissing, Message, Transport, TransportUnavailable, get_transport

__all__ = ["Consumer", "RetryPolicy", "ShutdownRequested", "default_consumer_name"]

log = logging.getLogger(__name__)

EVENT_FIELD = b"event"


class ShutdownRequested(BaseException):
    """Raised inside a blocking read when a stop is requested, to return at once.

    A BaseException so that no `except Exception` on the way swallows it."""


class _BatchFailed(Exception):
    """A handler failed while the batch was applied in one transaction (rolled back)."""

    def __init__(self, traceback: str) -> None:
        super().__init__("batch failed")
        self.traceback = traceback


class DatabaseUnavailable(Exception):
    """The database connection broke; the batch is held and retried, nothing is acknowledged."""


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**(n-1)))."""

    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int = 5

    @classmethod
    def for_group(cls, group: str) -> RetryPolicy:
        table = settings.EVENTBUS.get("RETRY", {})
        return cls(**{**table.get("default", {}), **table.get(group, {})})

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** max(attempt - 1, 0)))


@dataclass
class _Work:
    message: Message
    envelope: Envelope
    handler: registry.Handler
    attempts: int


@dataclass
class _Failure:
    message: Message
    error: BaseException | str
    traceback: str
    attempts: int
    envelope: Envelope | None = None
    permanent: bool = False


@dataclass
class Stats:
    processed: int = 0
    duplicates: int = 0
    skipped: int = 0
    retried: int = 0
    dead: int = 0
    reclaimed: int = 0


class Consumer:
    """Runs one consumer group's handlers. Thin commands build one and call `run()`."""

    def __init__(
        self,
        group: str,
        *,
        name: str | None = None,
        batch_size: int | None = None,
        block_ms: int | None = None,
        transport: Transport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        conf = settings.EVENTBUS
        self.group = group
        self.name = name or default_consumer_name()
        self.batch_size = batch_size or conf["CONSUMER_BATCH_SIZE"]
        self.block_ms = block_ms if block_ms is not None else conf["CONSUMER_BLOCK_MS"]
        self.policy = policy or RetryPolicy.for_group(group)
        self.claim_min_idle_ms = conf["CLAIM_MIN_IDLE_MS"]
        self.claim_interval_s = conf["CLAIM_INTERVAL_S"]
        self.consumer_idle_remove_ms = conf["CONSUMER_IDLE_REMOVE_MS"]
        self._transport = transport
        self.streams = [*registry.streams_for(group), Transport.replay_stream(group)]
        self.stats = Stats()
        self._stopping = threading.Event()
        self._in_blocking_read = False
        self._held: tuple[list[Message], bool] | None = None  # a batch waiting for the database
        self._unacked: dict[str, list[str]] = {}  # committed but not yet acknowledged
        self._outage = Outage(log, consequence="nothing is acknowledged meanwhile; retrying", stopping=self._stopping)
        self._next_retry_check = 0.0
        self._next_claim = 0.0
        self._next_cleanup = 0.0
        self._chores = [[0.0, every, func] for every, func in registry.chores_for(group)]  # [next due, every, func]

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = get_transport()
        return self._transport

    # --- lifecycle ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the loop to stop after the message in hand. Safe to call from a signal handler:
        if the loop is blocked waiting for messages it returns at once."""
        self._stopping.set()
        if self._in_blocking_read:
            self._in_blocking_read = False
            raise ShutdownRequested

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self, *, once: bool = False) -> Stats:
        """Process messages until stopped (or, with once=True, until none are waiting).

        Guarantees: a message is acknowledged only after the transaction holding its effects
        and its inbox row has committed; a message is never dropped without a DeadLetter row.
        """
        log.info("consumer %s of group %s reading %s", self.name, self.group, ", ".join(self.streams))
        groups_ready = own_pending_done = False
        while not self.stopping:
            try:
                if self._unacked:
                    self._ack(self._unacked)
                    self._unacked = {}
                if self._held is not None:
                    # A batch interrupted by a database outage is retried as it was, before
                    # anything is read again (a re-read would count as another delivery).
                    messages, redelivered = self._held
                    self.process(messages, redelivered=redelivered)
                    self._outage.recovered(f"consumer {self.name}")
                    continue
                if not groups_ready:
                    connection.ensure_connection()  # say at start if the database is unreachable
                    self.ensure_groups()
                    groups_ready = True
                if not own_pending_done:
                    self._drain_own_pending()
                    own_pending_done = True
                idle = self._step(block=not once)
                self._outage.recovered(f"consumer {self.name}")
                if once and idle:
                    break
            except ShutdownRequested:
                break
            except TransportUnavailable as exc:
                self._outage.failed("Redis", exc, redis_url=self.transport.url)
            except (DatabaseUnavailable, OperationalError, InterfaceError) as exc:
                self._outage.failed("database", exc)
                connection.close()  # reconnect on next use
            except GroupMissing as exc:
                log.warning("consumer group %s vanished (%s); re-creating it", self.group, exc)
                groups_ready = False
        self._in_blocking_read = False
        log.info(
            "consumer %s stopped: %d processed, %d duplicates, %d retries, %d dead letters",
            self.name, self.stats.processed, self.stats.duplicates, self.stats.retried, self.stats.dead,
        )  # fmt: skip
        return self.stats

    def ensure_groups(self) -> None:
        for stream in self.streams:
            if self.transport.ensure_group(stream, self.group):
                log.info("created consumer group %s on stream %s", self.group, stream)

    # --- the loop -----------------------------------------------------------------------------

    def _step(self, *, block: bool) -> bool:
        """One turn of the loop. Returns True if there was nothing to do."""
        now = time.monotonic()
        busy = False
        if now >= self._next_retry_check:
            busy |= self._run_due_retries()
        if now >= self._next_claim:
            busy |= self.reclaim()
            self._next_claim = now + self.claim_interval_s
        if now >= self._next_cleanup:
            self._remove_idle_consumers()
            self._next_cleanup = now + max(self.consumer_idle_remove_ms / 1000 / 10, 60)
        self._run_chores(now)
        if busy or self.stopping:
            return False
        block_ms = None
        if block and self.block_ms:
            until_retry_check = max(self._next_retry_check - time.monotonic(), 0.001)
            block_ms = max(1, min(self.block_ms, int(until_retry_check * 1000)))
        messages = self._read(dict.fromkeys(self.streams, ">"), block_ms=block_ms)
        if messages:
            self.process(messages, redelivered=False)
        return not messages

    def _read(self, ids: dict[str, str], *, block_ms: int | None) -> list[Message]:
        self._in_blocking_read = bool(block_ms)
        try:
            if self.stopping:
                return []
            return self.transport.read(self.group, self.name, ids, count=self.batch_size, block_ms=block_ms)
        finally:
            self._in_blocking_read = False

    def _drain_own_pending(self) -> None:
        """Process what this consumer name read but never acknowledged (a previous run of it).
        Listed with XPENDING, which is not a delivery; messages waiting for a scheduled retry
        are left to it, and only the rest are claimed again (which counts as an attempt)."""
        for stream in self.streams:
            after = "-"
            while not self.stopping:
                ids = self.transport.pending_ids(stream, self.group, self.name, after=after, count=self.batch_size)
                if not ids:
                    break
                after = ids[-1]
                self._claim_and_process(stream, ids)

    def _claim_and_process(self, stream: str, ids: list[str]) -> int:
        """XCLAIM the ids not waiting for a retry, and process them as redeliveries."""
        scheduled = self.transport.retries.scheduled(self.group, [(stream, i) for i in ids])
        wanted = [i for i in ids if (stream, i) not in scheduled]
        if wanted:
            self.process(self.transport.claim(stream, self.group, self.name, wanted), redelivered=True)
        return len(wanted)

    def _run_due_retries(self) -> bool:
        due = self.transport.retries.pop_due(self.group, now=time.time(), limit=self.batch_size)
        if due:
            by_stream: dict[str, list[str]] = defaultdict(list)
            for stream, entry_id in due:
                by_stream[stream].append(entry_id)
            messages = [
                m for stream, ids in by_stream.items() for m in self.transport.claim(stream, self.group, self.name, ids)
            ]
            self.process(messages, redelivered=True)
        # Own retries are known exactly; other consumers' are noticed within a second.
        next_at = self.transport.retries.next_due(self.group)
        wait = 1.0 if next_at is None else min(max(next_at - time.time(), 0.0), 1.0)
        self._next_retry_check = time.monotonic() + wait
        return bool(due)

    def reclaim(self) -> bool:
        """Claim messages pending longer than CLAIM_MIN_IDLE_MS in any consumer of the group
        (one that died) and process them. Follows XAUTOCLAIM's cursor to the end of the pending
        list. JUSTID keeps messages that only wait for their retry from using up an attempt;
        entries deleted from the stream are acknowledged as tombstones."""
        found = False
        for stream in self.streams:
            cursor = "0-0"
            while not self.stopping:
                cursor, ids, deleted = self.transport.autoclaim_ids(
                    stream, self.group, self.name,
                    min_idle_ms=self.claim_min_idle_ms, start=cursor, count=self.batch_size,
                )  # fmt: skip
                if deleted:
                    self.transport.ack(self.group, {stream: deleted})
                claimed = self._claim_and_process(stream, ids) if ids else 0
                if claimed:
                    found = True
                    self.stats.reclaimed += claimed
                    log.warning("claimed %d message(s) on %s left pending by a stopped consumer", claimed, stream)
                if cursor in ("0-0", "0"):
                    break
        return found

    def _run_chores(self, now: float) -> None:
        for chore in self._chores:
            due, every, func = chore
            if now < due:
                continue
            chore[0] = now + every
            try:
                func()
            except (OperationalError, InterfaceError):
                raise  # an outage: the run loop backs off
            except Exception:
                log.exception("group %s: housekeeping %s failed", self.group, getattr(func, "__name__", func))

    def _remove_idle_consumers(self) -> None:
        for stream in self.streams:
            removed = self.transport.remove_idle_consumers(
                stream, self.group, idle_ms=self.consumer_idle_remove_ms, keep=self.name
            )
            for name in removed:
                log.info("removed idle consumer %s from group %s on %s", name, self.group, stream)

    # --- one batch ----------------------------------------------------------------------------

    def process(self, messages: Sequence[Message], *, redelivered: bool) -> None:
        """Apply one batch (see the module docstring). If the database fails the batch is held
        and DatabaseUnavailable raised; the next step retries exactly this batch."""
        acks: dict[str, list[str]] = defaultdict(list)
        failures: list[_Failure] = []
        work: list[_Work] = []
        counts = self._delivery_counts(messages) if redelivered else {}
        for m in messages:
            if m.fields is None:  # tombstone: pending, but deleted from the stream
                acks[m.stream].append(m.id)
                continue
            attempts = counts.get((m.stream, m.id), 1)
            try:
                envelope = decode_message(m)
            except PermanentError as exc:
                failures.append(_Failure(m, exc, "", attempts, permanent=True))
                continue
            handler = registry.handler_for(self.group, envelope.type)
            if handler is None:
                acks[m.stream].append(m.id)
                self.stats.skipped += 1
                continue
            if attempts > self.policy.max_attempts:
                error = (
                    f"delivered {attempts} times without completing (limit {self.policy.max_attempts}): "
                    "a consumer crashed or was killed while handling it"
                )
                failures.append(_Failure(m, error, "", attempts, envelope=envelope, permanent=True))
                continue
            work.append(_Work(m, envelope, handler, attempts))

        self._held = (list(messages), redelivered)
        if work:
            failures += self._apply(work, acks)
        self._held = None
        # Committed: from here on a failure only delays the acknowledgement (kept for the next
        # step) or leaves a failed message pending for reclaim; nothing is applied twice.
        self._unacked = acks
        self._ack(acks)
        self._unacked = {}
        if redelivered:  # some may have failed before: forget when they first did
            self.transport.retries.forget(self.group, [(s, i) for s, ids in acks.items() for i in ids])
        self._settle(failures)

    def _apply(self, work: list[_Work], acks: dict[str, list[str]]) -> list[_Failure]:
        """Apply the batch in one transaction; if any handler fails, roll it back and apply the
        messages one by one, each in its own savepoint, so one failure undoes only its own
        writes. Either way the inbox rows commit with the effects."""
        try:
            return self._apply_together(work, acks)
        except _BatchFailed as failed:
            error = failed.__cause__ or failed
            if len(work) == 1:  # nothing else to save: this attempt of this message failed
                w = work[0]
                permanent = isinstance(error, PermanentError)
                return [
                    _Failure(w.message, error, failed.traceback, w.attempts, envelope=w.envelope, permanent=permanent)
                ]
            log.info("group %s: a batch of %d failed (%s); applying it message by message",
                     self.group, len(work), _one_line(error))  # fmt: skip
            return self._apply_one_by_one(work, acks)

    def _claim(self, work: list[_Work]) -> tuple[list[_Work], list[_Work]]:
        """Record the batch in the inbox: (new work to apply, work already applied)."""
        new = inbox.claim(self.group, [w.envelope.event_id for w in work])
        todo, seen = [], []
        for w in work:
            if w.envelope.event_id in new:
                new.discard(w.envelope.event_id)  # a second copy in the same batch is a duplicate
                todo.append(w)
            else:
                seen.append(w)
        return todo, seen

    def _apply_together(self, work: list[_Work], acks: dict[str, list[str]]) -> list[_Failure]:
        try:
            with transaction.atomic():
                # When every handler of the batch only runs bulk statements, one pipeline from
                # the inbox claim to the last write: BEGIN rides with the claim, the writes go
                # out together before the COMMIT.
                together = all(registry.pipeline_safe(w.handler) for w in work)
                with bulk.pipelined() if together else contextlib.nullcontext():
                    todo, seen = self._claim(work)
                    for handler, run in _runs(todo):
                        handler([w.envelope for w in run])
                deadletters_resolve(_replays(todo + seen))
        except Exception as exc:
            if _database_broken(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise _BatchFailed(traceback.format_exc()) from exc
        self.stats.processed += len(todo)
        self.stats.duplicates += len(seen)
        for w in work:
            acks[w.message.stream].append(w.message.id)
        return []

    def _apply_one_by_one(self, work: list[_Work], acks: dict[str, list[str]]) -> list[_Failure]:
        failures: list[_Failure] = []
        applied: list[_Work] = []
        try:
            with transaction.atomic():
                todo, seen = self._claim(work)
                for w in todo:
                    try:
                        with transaction.atomic():
                            w.handler([w.envelope])
                    except Exception as exc:
                        if _database_broken(exc):
                            raise DatabaseUnavailable(str(exc)) from exc
                        failures.append(
                            _Failure(
                                w.message, exc, traceback.format_exc(), w.attempts, envelope=w.envelope,
                                permanent=isinstance(exc, PermanentError),
                            )
                        )  # fmt: skip
                        continue
                    applied.append(w)
                inbox.release(self.group, [f.envelope.event_id for f in failures if f.envelope])
                deadletters_resolve(_replays(applied + seen))
        except DatabaseError as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        self.stats.processed += len(applied)
        self.stats.duplicates += len(seen)
        for w in applied + seen:
            acks[w.message.stream].append(w.message.id)
        return failures

    def _delivery_counts(self, messages: Sequence[Message]) -> dict[tuple[str, str], int]:
        return self.transport.delivery_counts(self.group, [(m.stream, m.id) for m in messages if m.fields is not None])

    def _ack(self, acks: dict[str, list[str]]) -> None:
        try:
            self.transport.ack(self.group, acks)
        except GroupMissing:
            log.warning("group %s vanished before acknowledging; its pending list went with it", self.group)

    def _settle(self, failures: list[_Failure]) -> None:
        """Schedule a retry for each failure, or dead-letter it after its last attempt."""
        retries: dict[tuple[str, str], float] = {}
        now = time.time()
        for f in failures:
            if f.permanent or f.attempts >= self.policy.max_attempts:
                self._dead_letter(f)
                continue
            delay = self.policy.delay(f.attempts)
            retries[(f.message.stream, f.message.id)] = now + delay
            self.stats.retried += 1
            log.warning(
                "group %s: %s failed (attempt %d of %d), retrying in %.2fs: %s",
                self.group, _describe(f), f.attempts, self.policy.max_attempts, delay, _one_line(f.error),
            )  # fmt: skip
        if retries:
            self.transport.retries.note_failures(self.group, list(retries), now)
            self.transport.retries.schedule(self.group, retries)
            soonest = min(retries.values()) - now
            self._next_retry_check = min(self._next_retry_check, time.monotonic() + max(soonest, 0.0))

    def _dead_letter(self, f: _Failure) -> None:
        error = f.error if isinstance(f.error, str) else f"{type(f.error).__name__}: {f.error}"
        key = (f.message.stream, f.message.id)
        first = self.transport.retries.first_failures(self.group, [key]).get(key)
        try:
            row = deadletter_record(
                group=self.group,
                message=f.message,
                error=error,
                traceback=f.traceback,
                attempts=f.attempts,
                event_id=f.envelope.event_id if f.envelope else None,
                event_type=f.envelope.type if f.envelope else _raw_type(f.message),
                first_failed_at=dt.datetime.fromtimestamp(first, dt.UTC) if first else None,
            )
        except DatabaseError as exc:
            # Not recorded, so not acknowledged: it stays pending and comes back.
            raise DatabaseUnavailable(str(exc)) from exc
        fields = {_str(k): _str(v) for k, v in (f.message.fields or {}).items()}
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
        self.transport.retries.forget(self.group, [key])
        self.stats.dead += 1
        log.error("group %s: %s dead-lettered (row %d): %s", self.group, _describe(f), row.pk, _one_line(error))


def decode_message(m: Message) -> Envelope:
    raw = (m.fields or {}).get(EVENT_FIELD)
    if raw is None:
        from eventbus.events import MalformedMessage

        raise MalformedMessage("message has no 'event' field")
    return decode(raw)


def _runs(work: list[_Work]) -> list[tuple[registry.Handler, list[_Work]]]:
    """Consecutive messages with the same handler, in stream order."""
    runs: list[tuple[registry.Handler, list[_Work]]] = []
    for w in work:
        if runs and runs[-1][0] is w.handler and runs[-1][1][-1].envelope.type == w.envelope.type:
            runs[-1][1].append(w)
        else:
            runs.append((w.handler, [w]))
    return runs


def _replays(work: list[_Work]) -> list[int]:
    return [d for w in work if (d := replayed_deadletter_id(w.message.fields)) is not None]


def _database_broken(exc: BaseException) -> bool:
    """Did this handler error break the connection (rather than fail one statement)?"""
    if connection.needs_rollback or isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        raw = connection.connection
        return raw is None or bool(getattr(raw, "closed", False)) or bool(getattr(raw, "broken", False))
    return False


def _raw_type(m: Message) -> str:
    raw = (m.fields or {}).get(b"type", b"")
    return _str(raw)[:100]


def _str(value: bytes | str) -> str:
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value


def _describe(f: _Failure) -> str:
    kind = f.envelope.type if f.envelope else "message"
    return f"{kind} {f.message.stream}/{f.message.id}"


def _one_line(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:300]
