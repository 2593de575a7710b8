"""The outbox relay: moves committed outbox rows to Redis Streams.

Each batch is claimed with SELECT ... FOR UPDATE SKIP LOCKED in id order (so several relays
never publish the same rows at once, and a row whose transaction commits late is still picked
up), published with one pipelined round trip of XADDs, and marked published in the same
transaction. A crash between XADD and commit publishes those rows again on the next run: the
stream may see an event twice, consumers apply it once (inbox).

The relay sleeps on a Redis wake-up published after every commit that recorded events, so an
event usually leaves within a millisecond; RELAY_POLL_INTERVAL is only the backstop. It also
does the bus's housekeeping: trimming acknowledged stream entries and purging old outbox and
inbox rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

import bulk
from eventbus.messages import registry
from eventbus.models import ConsumerBatch, OutboxEvent, ProcessedEvent
from eventbus.redis import wakeup
from eventbus.redis.client import Subscription
from eventbus.redis.transport import Transport, TransportUnavailable
from eventbus.runtime import partitions, tracing
from eventbus.runtime.heartbeats import Heartbeat, process_name
from eventbus.runtime.metrics import count_published
from eventbus.runtime.worker import Worker
from eventbus.store import recovery
from eventbus.store.outbox_table import ordered_index_scan, purge, vacuum_if_churned

__all__ = ["Relay"]

log = logging.getLogger(__name__)


RESUME_BATCHES = 10


class Relay(Worker):
    """Publishes committed outbox rows. The command builds one and calls `run()`."""

    outage_consequence = "events wait in the outbox meanwhile; retrying"
    # Any database error: the relay's statements are its own, none is an event's failure.
    database_errors = (DatabaseError,)

    def __init__(
        self,
        *,
        batch_size: int | None = None,
        poll_interval: float | None = None,
        transport: Transport | None = None,
        grace_s: float | None = None,
    ) -> None:
        super().__init__(transport=transport)
        conf = settings.EVENTBUS
        if grace_s is None:
            grace_s = conf["RELAY_GRACE_S"] if conf["PUBLISH_ON_COMMIT"] else 0.0
        # Rows younger than this are being published by the process that committed them.
        self.grace = dt.timedelta(seconds=grace_s)
        self.batch_size = batch_size or conf["RELAY_BATCH_SIZE"]
        self.poll_interval = poll_interval if poll_interval is not None else conf["RELAY_POLL_INTERVAL"]
        self.trim_interval_s = conf["TRIM_INTERVAL_S"]
        self.outbox_retention = dt.timedelta(seconds=conf["OUTBOX_RETENTION_S"])
        self.inbox_retention = dt.timedelta(seconds=conf["INBOX_RETENTION_S"])
        self.reconciler = (
            recovery.Reconciler(after_s=conf["RECONCILE_AFTER_S"], retention_s=conf["OUTBOX_RETENTION_S"])
            if recovery.enabled()
            else None
        )
        self.reconcile_interval_s = conf["RECONCILE_INTERVAL_S"]
        self._next_reconcile = 0.0
        self._check_memory_first = False
        self._wakeups: Subscription | None = None
        self._next_maintenance = 0.0
        self._groups_seen = False
        self._resume_after: int | None = None
        self._hinted = 0
        self.published = 0
        self.name = process_name("relay-")
        self._started_at = time.time()
        self._last_batch_at: float | None = None
        self._last_batch_size = 0

    @property
    def who(self) -> str:
        return "the relay"

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            role="relay", name=self.name, started_at=self._started_at, last_batch_at=self._last_batch_at,
            batch_size=self._last_batch_size, published=self.published,
        )  # fmt: skip

    def ensure_groups(self) -> None:
        """Create every registered group before publishing, so no group that has not started
        yet misses events, and trimming knows every reader of a stream. Checked again at each
        maintenance tick: a group that vanished (stream deleted, Redis restarted without
        persistence) is re-created with a warning."""
        for group in registry.groups():
            for stream in [*registry.streams_for(group), Transport.replay_stream(group)]:
                if self.transport.ensure_group(stream, group):
                    if self._groups_seen:
                        log.warning("consumer group %s on stream %s had vanished; re-created it", group, stream)
                    else:
                        log.info("created consumer group %s on stream %s", group, stream)
        self._groups_seen = True

    def publish_batch(self) -> int:
        """Publish up to batch_size unpublished rows; returns how many were published. Published
        rows are deleted, or kept (marked published) for OUTBOX_RETENTION_S if that is set.

        Three database round trips: BEGIN rides with the claim (pipeline mode), then the marking,
        then the COMMIT. The marking comes after the XADD, as a crash in between must leave the
        rows unpublished."""
        with transaction.atomic(), bulk.pipelined():
            ordered_index_scan()
            unpublished = OutboxEvent.objects.select_for_update(skip_locked=True).filter(published_at__isnull=True)
            if self.grace:
                unpublished = unpublished.filter(created_at__lt=timezone.now() - self.grace)
            if self._resume_after is not None:
                # Working through a backlog: start past the last batch instead of stepping over
                # the dead index entries of every row published so far (quadratic otherwise).
                unpublished = unpublished.filter(id__gt=self._resume_after)
            rows = [
                (pk, _stream_now(stream, aggregate_id), type_, body)
                for pk, stream, type_, body, aggregate_id in unpublished.order_by("id").values_list(
                    "id", "stream", "event_type", "body", "aggregate_id"
                )[: self.batch_size]
            ]
            if not rows:
                self._resume_after = None
                return 0
            with tracing.publishing(",".join(sorted({r[1] for r in rows})), len(rows)):
                self.transport.publish([(stream, {"type": type_, "event": body}) for _, stream, type_, body in rows])
            count_published((stream, type_) for _, stream, type_, _ in rows)
            # Losing this in a database crash only publishes the rows again (consumers drop the
            # duplicates), so it need not wait for the WAL flush.
            bulk.relaxed_commit()
            self._settle_published("id", [r[0] for r in rows])
        self.published += len(rows)
        self._last_batch_at, self._last_batch_size = time.time(), len(rows)
        # A lower id can commit late (ids are taken before commit): the hint holds only while
        # batches come back full, and never for more than RESUME_BATCHES in a row, so such a
        # row is found by the next claim from the start.
        self._hinted = self._hinted + 1 if self._resume_after is not None else 0
        full = len(rows) == self.batch_size
        self._resume_after = rows[-1][0] if full and self._hinted < RESUME_BATCHES else None
        return len(rows)

    def forget_published(self) -> int:
        """Delete (or, with a retention, mark) the rows of events their producer published on
        commit and marked so. Runs before each claim, so those rows are never published twice
        (unless the marks were lost: then the inbox drops the repeat). Returns how many."""
        total = 0
        while not self.stopping:
            marked = self.transport.take_published_marks(10_000)
            if not marked:
                return total
            with transaction.atomic():
                bulk.relaxed_commit()
                self._settle_published("event_id", marked)  # ids as text: cast by the database
            total += len(marked)
        return total

    def _settle_published(self, key: str, keys: list) -> None:
        """Delete the rows of published events, or mark them published if OUTBOX_RETENTION_S
        keeps them."""
        if self.outbox_retention:
            bulk.update(OutboxEvent, {"published_at": timezone.now()}, where={f"{key}__in": keys})
        else:
            bulk.delete(OutboxEvent, where={f"{key}__in": keys})

    def drain(self) -> int:
        """Publish until the outbox has no unpublished row (past the grace period)."""
        self.forget_published()
        total = 0
        while not self.stopping:
            hinted = self._resume_after is not None
            n = self.publish_batch()
            total += n
            if n < self.batch_size and not hinted:  # a short hinted batch: look from the start
                break
        return total

    def run(self, *, once: bool = False) -> int:
        """Relay until stopped (or, with once=True, until the outbox is empty). Returns the
        number of events published.

        Guarantees: a row is deleted (or marked published) only after Redis took its event, in
        the transaction that claimed it; a stop finishes the batch in hand first."""
        log.info("relay started (batch %d, backstop poll %.1fs)", self.batch_size, self.poll_interval)
        self.loop(once=once)
        self._close_wakeups()
        self._stopping.clear()
        try:  # leave no published row behind on a clean stop
            self.forget_published()
        except (TransportUnavailable, DatabaseError) as exc:
            log.warning("could not delete the rows of events published on commit: %s", exc)
        log.info("relay stopped: %d events published", self.published)
        return self.published

    def step(self, *, once: bool) -> bool:
        if self._check_memory_first:
            self.check_memory()
            self._check_memory_first = False
        if not self._groups_seen:
            self.ensure_groups()
        if self._wakeups is None and not once:
            self._wakeups = wakeup.subscribe(self.transport)
        self.drain()
        if time.monotonic() >= self._next_maintenance:
            self.maintain()
            self._next_maintenance = time.monotonic() + self.trim_interval_s
        return True

    def between_steps(self) -> None:
        """Sleep until a wake-up or the backstop poll; at once if rows were committed while
        the step drained (their wake-up is queued)."""
        wakeups = self._wakeups
        assert wakeups is not None
        self.interruptibly(lambda: wakeups.wait(self.poll_interval), otherwise=False)

    def redis_lost(self) -> None:
        self._close_wakeups()  # its connection is gone with Redis: subscribe again when back
        # Redis may come back without its data, or as a replica that missed the newest writes:
        # check what it remembers first thing, before publishing moves its streams on again.
        self._next_maintenance = 0.0
        self._check_memory_first = True

    def _close_wakeups(self) -> None:
        if self._wakeups is not None:
            self._wakeups.close()
            self._wakeups = None

    # --- housekeeping -------------------------------------------------------------------------

    def check_memory(self) -> None:
        """Find out whether Redis lost data since the last check and, if so, publish again what
        it may have lost (eventbus.store.recovery). Needs the rows kept (OUTBOX_RETENTION_S)."""
        if self.outbox_retention:
            recovery.check_memory(self.transport)

    def maintain(self) -> None:
        """Check what Redis remembers and re-check groups, trim acknowledged stream entries,
        reconcile, purge published outbox rows and old inbox rows."""
        self.check_memory()
        self.ensure_groups()
        streams = set(registry.subscriptions())
        streams.update(Transport.replay_stream(g) for g in registry.groups())
        for stream in sorted(streams):
            self.transport.trim_acknowledged(stream)
        if self.reconciler is not None and time.monotonic() >= self._next_reconcile:
            self.reconciler.run(self.transport)
            self._next_reconcile = time.monotonic() + self.reconcile_interval_s
        now = timezone.now()
        if self.outbox_retention:
            purge(OutboxEvent.objects.filter(published_at__lt=now - self.outbox_retention))
        vacuum_if_churned()
        purge(ProcessedEvent.objects.filter(processed_at__lt=now - self.inbox_retention))
        purge(ConsumerBatch.objects.filter(started_at__lt=now - self.inbox_retention))


def _stream_now(stream: str, aggregate_id: str) -> str:
    """The stream a row's event goes to under the partition count in force: a row recorded
    under another count (republished after a change) goes where its aggregate's events go now."""
    logical, partition = partitions.logical(stream)
    if partition is None and partitions.count() == 1:
        return stream
    return partitions.stream_for(logical, aggregate_id, partitioned=registry.partitioned(logical))
