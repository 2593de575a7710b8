"""The consumer loop: one per process, reading a consumer group's streams and handing each batch
to eventbus.runtime.batch, which applies it with effectively-once effects.

Each step it runs the retries that are due, claims messages left pending by dead consumers
(XAUTOCLAIM), removes consumers idle for long and runs the group's chores, each on its own
schedule, then reads new messages (blocking until one arrives or a retry is due). On start it
first processes what this consumer name read in a previous run but never acknowledged. The
worker base (eventbus.runtime.worker) owns the rest: stop requests, Redis and database outages.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from eventbus.messages import registry
from eventbus.redis.transport import GroupMissing, Message, Transport
from eventbus.runtime import logcontext, partitions
from eventbus.runtime.batch import BatchProcessor, Stats
from eventbus.runtime.heartbeats import Heartbeat, process_name
from eventbus.runtime.leases import LeasedReading
from eventbus.runtime.worker import ShutdownRequested, Worker
from eventbus.store.failures import DEFAULT_NEWER_VERSION_WAIT_S, FailurePolicy, RetryPolicy

__all__ = ["Consumer", "RetryPolicy", "ShutdownRequested", "Stats", "default_consumer_name"]


def default_consumer_name() -> str:
    """Unique among the live consumers, in containers too (eventbus.runtime.heartbeats.process_name)."""
    return process_name()


class Consumer(LeasedReading, Worker):
    """Runs one consumer group's handlers. Thin commands build one and call `run()`."""

    outage_consequence = "nothing is acknowledged meanwhile; retrying"

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
        super().__init__(transport=transport)
        conf = settings.EVENTBUS
        self.group = group
        self.name = name or default_consumer_name()
        self.batch_size = batch_size or conf["CONSUMER_BATCH_SIZE"]
        self.block_ms = block_ms if block_ms is not None else conf["CONSUMER_BLOCK_MS"]
        self.policy = policy or RetryPolicy.for_group(group)
        self.newer_version_wait_s = float(conf.get("NEWER_VERSION_WAIT_S", DEFAULT_NEWER_VERSION_WAIT_S))
        self.claim_min_idle_ms = conf["CLAIM_MIN_IDLE_MS"]
        self.claim_interval_s = conf["CLAIM_INTERVAL_S"]
        self.consumer_idle_remove_ms = conf["CONSUMER_IDLE_REMOVE_MS"]
        self.streams = [*registry.streams_for(group), Transport.replay_stream(group)]
        # Partition streams are read under a lease (eventbus.runtime.leases); the others by every
        # consumer of the group, first come first served.
        self.partition_streams = partitions.leased(self.streams)
        self.lease_ttl_ms = conf["LEASE_TTL_MS"]
        self._unsettled: set[str] = set()  # partitions taken whose takeover is not done yet
        self.stats = Stats()
        self._started_at = time.time()
        self._groups_ready = False
        self._own_pending_done = False
        self._next_retry_check = 0.0
        self._next_claim = 0.0
        self._next_cleanup = 0.0
        self._chores = [[0.0, every, func] for every, func in registry.chores_for(group)]  # [next due, every, func]

    @functools.cached_property
    def _batches(self) -> BatchProcessor:
        # Built on first use, so that constructing a consumer does not yet need Redis.
        failures = FailurePolicy(
            self.group, self.transport, self.policy, newer_version_wait_s=self.newer_version_wait_s
        )
        return BatchProcessor(
            self.group, self.transport, failures, self.stats, consumer=self.name, retry_scheduled=self._retry_due_at
        )

    @property
    def who(self) -> str:
        return f"consumer {self.name}"

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            role="consumer", name=self.name, groups=[self.group], streams=self.streams, started_at=self._started_at,
            last_batch_at=self.stats.last_batch_at, batch_size=self.stats.last_batch_size,
            processed=self.stats.processed, duplicates=self.stats.duplicates, retries=self.stats.retried,
            dead=self.stats.dead, partitions=list(self.leases.held) if self.leases else [],
        )  # fmt: skip

    def run(self, *, once: bool = False) -> Stats:
        """Process messages until stopped (or, with once=True, until none are waiting).

        Guarantees: a message is acknowledged only after the transaction holding its effects
        and its inbox row has committed; a message is never dropped without a DeadLetter row;
        a stop finishes the batch in hand first.
        """
        self.log.info("consumer %s of group %s reading %s", self.name, self.group, ", ".join(self.streams))
        with logcontext.bound(group=self.group, consumer=self.name):
            self.loop(once=once)
            self._release_leases()
        self.log.info(
            "consumer %s stopped: %d processed, %d duplicates, %d retries, %d dead letters",
            self.name, self.stats.processed, self.stats.duplicates, self.stats.retried, self.stats.dead,
        )  # fmt: skip
        return self.stats

    def ensure_groups(self) -> None:
        """Create the group on each of its streams (MKSTREAM) if it does not exist yet."""
        for stream in self.streams:
            if self.transport.ensure_group(stream, self.group):
                self.log.info("created consumer group %s on stream %s", self.group, stream)

    def group_missing(self, exc: GroupMissing) -> None:
        self.log.warning("consumer group %s vanished (%s); re-creating it", self.group, exc)
        self._groups_ready = False

    # --- one step -----------------------------------------------------------------------------

    def step(self, *, once: bool) -> bool:
        if self._batches.resume():
            return False
        if not self._groups_ready:
            connection.ensure_connection()  # say at start if the database is unreachable
            self.ensure_groups()
            self._groups_ready = True
        busy = False
        if self.leases is not None and not self.leases.due_in_s():
            busy |= self._refresh_leases()
        if not self._own_pending_done:
            self._drain_own_pending()
            self._own_pending_done = True
        now = time.monotonic()
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
        if self.leases is not None and not self.leases.due_in_s():
            # This step outlasted a refresh period (a chore waited for the database): renew first.
            # A read sent on a lease that may have run out could take entries of a partition its
            # new owner reads; left pending here, they would be applied after newer ones.
            return False
        block_ms = None
        if not once and self.block_ms:
            until_retry_check = max(self._next_retry_check - time.monotonic(), 0.001)
            if self.leases is not None:  # wake in time to renew the leases
                until_retry_check = min(until_retry_check, max(self.leases.due_in_s(), 0.001))
            block_ms = max(1, min(self.block_ms, int(until_retry_check * 1000)))
        messages = self._read(dict.fromkeys(self.readable(), ">"), block_ms=block_ms)
        if messages and self.leases is not None and not self.leases.valid():
            # Paused past most of a lease period (a stalled host): make sure the partitions
            # these came from are still ours (and taken over, if taken again). What came from
            # others stays pending: their owner takes it over at its next refresh.
            self._refresh_leases()
            ours = set(self.readable())
            messages = [m for m in messages if m.stream in ours]
        if messages:
            self._batches.process(messages, redelivered=False)
        return not messages

    def _read(self, ids: dict[str, str], *, block_ms: int | None) -> list[Message]:
        def read() -> list[Message]:
            return self.transport.read(self.group, self.name, ids, count=self.batch_size, block_ms=block_ms)

        if block_ms:
            return self.interruptibly(read, otherwise=[])
        return [] if self.stopping else read()

    def _retry_due_at(self, due: float) -> None:
        """Look for due retries no later than `due` (epoch seconds)."""
        self._next_retry_check = min(self._next_retry_check, time.monotonic() + max(due - time.time(), 0.0))

    def _drain_own_pending(self) -> None:
        """Process what this consumer name read but never acknowledged (a previous run of it).
        Listed with XPENDING, which is not a delivery; messages waiting for a scheduled retry
        are left to it, and only the rest are claimed again (which counts as an attempt)."""
        for stream in self.readable():
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
            self._batches.process(self.transport.claim(stream, self.group, self.name, wanted), redelivered=True)
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
            self._batches.process(messages, redelivered=True)
        # Own retries are known exactly; other consumers' are noticed within a second.
        next_at = self.transport.retries.next_due(self.group)
        wait = 1.0 if next_at is None else min(max(next_at - time.time(), 0.0), 1.0)
        self._next_retry_check = time.monotonic() + wait
        return bool(due)

    def reclaim(self) -> bool:
        """Claim messages pending longer than CLAIM_MIN_IDLE_MS in any consumer of the group
        (one that died) and process them, on the streams this consumer reads."""
        found = False
        for stream in self.readable():
            claimed = self._claim_all_pending(stream, min_idle_ms=self.claim_min_idle_ms)
            if claimed:
                found = True
                self.stats.reclaimed += claimed
                self.log.warning("claimed %d message(s) on %s left pending by a stopped consumer", claimed, stream)
        return found

    def _claim_all_pending(self, stream: str, *, min_idle_ms: int) -> int:
        """Claim and process every message of the stream pending at least min_idle_ms in any
        consumer of the group. Follows XAUTOCLAIM's cursor to the end of the pending list.
        JUSTID keeps messages that only wait for their retry from using up an attempt; entries
        deleted from the stream are acknowledged as tombstones. Returns how many."""
        total = 0
        cursor = "0-0"
        while not self.stopping:
            cursor, ids, deleted = self.transport.autoclaim_ids(
                stream, self.group, self.name, min_idle_ms=min_idle_ms, start=cursor, count=self.batch_size,
            )  # fmt: skip
            if deleted:
                self.transport.ack(self.group, {stream: deleted})
            total += self._claim_and_process(stream, ids) if ids else 0
            if cursor in ("0-0", "0"):
                break
        return total

    def _run_chores(self, now: float) -> None:
        for chore in self._chores:
            due, every, func = chore
            if now < due:
                continue
            chore[0] = now + every
            try:
                func()
            except (OperationalError, InterfaceError):
                raise  # an outage: the loop backs off
            except Exception:
                self.log.exception("group %s: housekeeping %s failed", self.group, getattr(func, "__name__", func))

    def _remove_idle_consumers(self) -> None:
        for stream in self.streams:
            removed = self.transport.remove_idle_consumers(
                stream, self.group, idle_ms=self.consumer_idle_remove_ms, keep=self.name
            )
            for name in removed:
                self.log.info("removed idle consumer %s from group %s on %s", name, self.group, stream)
