"""What is in flight: the numbers the operations page, `check_invariants --wait` and the
benchmarks read. Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field

from eventbus.messages import registry
from eventbus.models import DeadLetter, OutboxEvent
from eventbus.redis.transport import Transport, get_transport
from eventbus.runtime import partitions

__all__ = ["Backlog", "GroupState", "group_states", "pipeline_backlog"]


@dataclass(frozen=True)
class GroupState:
    stream: str
    group: str
    consumers: int
    pending: int  # delivered, not yet acknowledged
    lag: int  # on the stream, not yet delivered to the group
    retrying: int  # waiting for a retry (part of pending); the group's, on its first stream
    owner: str = ""  # the consumer holding the partition's lease; "" if not a partition or none


@dataclass(frozen=True)
class Backlog:
    outbox: int
    groups: list[GroupState] = field(default_factory=list)
    dead_letters: int = 0

    @property
    def total(self) -> int:
        """Everything not yet finished: unpublished events plus undelivered or unacknowledged
        messages. Zero means the pipeline has drained."""
        return self.outbox + sum(g.pending + g.lag for g in self.groups)

    def __str__(self) -> str:
        in_flight = sum(g.pending + g.lag for g in self.groups)
        return f"{self.outbox} in the outbox, {in_flight} on streams"


def pipeline_backlog(transport: Transport | None = None) -> Backlog:
    transport = transport or get_transport()
    return Backlog(
        outbox=OutboxEvent.objects.filter(published_at__isnull=True).count(),
        groups=group_states(transport),
        dead_letters=DeadLetter.objects.filter(status=DeadLetter.Status.DEAD).count(),
    )


def group_states(transport: Transport) -> list[GroupState]:
    """Each group's state on each of its streams, read from Redis alone (no database)."""
    groups = []
    for group in registry.groups():
        retrying = transport.retries.count(group)
        streams = registry.streams_for(group)
        owners = transport.lease_owners(group, partitions.leased(streams))
        for stream in [*streams, Transport.replay_stream(group)]:
            for info in transport.groups(stream):
                if info.name != group:
                    continue
                groups.append(
                    GroupState(
                        stream=stream,
                        group=group,
                        consumers=info.consumers,
                        pending=info.pending,
                        lag=info.lag,
                        retrying=retrying if stream == streams[0] else 0,  # counted per group, once
                        owner=owners.get(stream) or "",
                    )
                )
    return groups
