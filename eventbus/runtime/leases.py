"""Which partitions a consumer reads: within a group, each partition stream by one consumer at a
time, the partitions shared fairly among the group's live consumers.

Every EVENTBUS_LEASE_TTL_MS / 3 (and never later than a read's block allows) a consumer renews
its membership and its leases, then:
- its share is ceil(partitions / live members); it gives back the leases above its share (a
  consumer that joined gets them within a lease period) and takes free ones up to it, starting
  from an offset of its own (its rank among the members) so that consumers rarely race for one;
- it reads only within a refresh period of its last renewal (a step that took longer, waiting
  for the database, renews first), so a read never goes out on a lease about to run out;
- a lease it could not renew is lost (it paused past the expiry, or Redis forgot): it stops
  reading that partition before its next batch; the batch in hand, if any, was read while it
  held the lease, and the inbox keeps its effects exactly-once whoever applies them;
- a partition it takes is taken over at once: the previous owner's pending entries are claimed
  (XAUTOCLAIM with no minimum idle time) and processed before anything new.
A consumer that stops gives back every lease and leaves the members; one that dies loses them
at expiry.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence

from eventbus.redis.transport import Transport, TransportUnavailable

__all__ = ["LeasedReading", "Leases", "share"]

log = logging.getLogger(__name__)


def share(partitions: int, members: int) -> int:
    """How many partitions each of a group's live consumers may hold."""
    return math.ceil(partitions / max(1, members))


class Leases:
    """One consumer's leases on the partition streams of its group."""

    def __init__(self, transport: Transport, group: str, consumer: str, streams: Sequence[str], *, ttl_ms: int) -> None:
        self.transport = transport
        self.group = group
        self.consumer = consumer
        self.streams = list(streams)
        self.ttl_ms = ttl_ms
        self.held: list[str] = []
        self.members = 1
        self._renewed_at = -math.inf

    @property
    def refresh_every_s(self) -> float:
        return self.ttl_ms / 3000

    def due_in_s(self) -> float:
        """Seconds until the next refresh is due (0: now)."""
        return max(0.0, self._renewed_at + self.refresh_every_s - time.monotonic())

    def valid(self) -> bool:
        """Whether the leases renewed last are surely still ours (renewed less than 80% of a
        lease period ago): a consumer that slept longer checks again before it processes."""
        return time.monotonic() - self._renewed_at < self.ttl_ms * 0.8 / 1000

    def refresh(self) -> tuple[list[str], list[str]]:
        """Renew, give back the surplus, take free partitions up to the share. Returns (taken,
        lost): the partitions newly held, and those found held no more."""
        t = self.transport
        started = time.monotonic()
        members = t.lease_members(self.group, self.consumer, ttl_ms=self.ttl_ms)
        self.members = len(members)
        renewed = t.lease_renew(self.group, self.consumer, self.held, ttl_ms=self.ttl_ms)
        lost = [s for s, ok in zip(self.held, renewed, strict=True) if not ok]
        held = [s for s, ok in zip(self.held, renewed, strict=True) if ok]
        most = share(len(self.streams), len(members))
        taken: list[str] = []
        if len(held) > most:
            surplus, held = held[most:], held[:most]
            t.lease_release(self.group, self.consumer, surplus)
            log.info("group %s: %s gave back %s (its share is %d of %d partitions among %d consumers)",
                     self.group, self.consumer, ", ".join(surplus), most, len(self.streams), len(members))  # fmt: skip
        elif len(held) < most:
            rank = members.index(self.consumer) if self.consumer in members else 0
            start = (rank * most) % len(self.streams)
            order = self.streams[start:] + self.streams[:start]
            owners = t.lease_owners(self.group, [s for s in order if s not in held])
            free = [s for s, owner in owners.items() if owner is None][: most - len(held)]
            got = t.lease_acquire(self.group, self.consumer, free, ttl_ms=self.ttl_ms)
            taken = [s for s, ok in zip(free, got, strict=True) if ok]
            held += taken
        self.held = [s for s in self.streams if s in set(held)]
        self._renewed_at = started
        if lost:
            log.warning("group %s: %s lost the lease of %s (it paused past the lease's expiry, or Redis forgot it); "
                        "not reading there any more", self.group, self.consumer, ", ".join(lost))  # fmt: skip
        return taken, lost

    def release_all(self) -> None:
        """Give back every lease and leave the members (a clean stop)."""
        held, self.held = self.held, []
        self.transport.lease_release(self.group, self.consumer, held)
        self.transport.lease_leave(self.group, self.consumer)
        self._renewed_at = -math.inf


class LeasedReading:
    """What a consumer (eventbus.runtime.consumer.Consumer) does with its partition leases: which
    streams it reads, the refresh with its takeovers, the release on stop."""

    group: str
    name: str
    streams: list[str]
    partition_streams: list[str]
    lease_ttl_ms: int
    _unsettled: set[str]  # partitions taken whose takeover is not done yet
    transport: Transport
    log: logging.Logger

    def _claim_all_pending(self, stream: str, *, min_idle_ms: int) -> int:
        raise NotImplementedError

    @functools.cached_property
    def leases(self) -> Leases | None:
        """This consumer's partition leases; None when the group reads no partitioned stream."""
        if not self.partition_streams:
            return None
        return Leases(self.transport, self.group, self.name, self.partition_streams, ttl_ms=self.lease_ttl_ms)

    def readable(self) -> list[str]:
        """The streams to read now: the partitions leased and taken over, and every stream not
        partitioned."""
        held = set(self.leases.held) - self._unsettled if self.leases else set()
        return [s for s in self.streams if s in held or s not in self.partition_streams]

    def _release_leases(self) -> None:
        if self.leases is None:
            return
        try:
            self.leases.release_all()
        except TransportUnavailable as exc:
            self.log.warning("could not give back the partition leases (they expire by themselves): %s", exc)

    def _refresh_leases(self) -> bool:
        """Renew and rebalance the partition leases (eventbus.runtime.leases), then take over what other
        consumers left pending on the partitions held: all of it on a partition just taken (its
        previous owner stopped, died or lost the lease), and on the others whatever a consumer
        that lost its lease read after it had expired. A partition is read (`readable`) only
        once its takeover is done: an outage half-way leaves it for the next refresh. True if
        the takeover processed anything."""
        assert self.leases is not None
        taken, _ = self.leases.refresh()
        self._unsettled = (self._unsettled | set(taken)) & set(self.leases.held)
        held = [s for s in self.leases.held if s not in self._unsettled]
        others = self.transport.pending_elsewhere(self.group, self.name, held)
        busy = False
        for stream in [s for s in self.leases.held if s in self._unsettled or s in others]:
            busy |= self._claim_all_pending(stream, min_idle_ms=0) > 0
            self._unsettled.discard(stream)
        return busy
