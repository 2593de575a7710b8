"""The pipeline's state in one read: live processes (by heartbeat), each group's lag, pending
and retrying messages, the outbox backlog and the age of its oldest event, dead letters waiting,
and what is wrong. `manage.py status` prints it, the operations console shows it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Count, Min

from eventbus.messages import registry
from eventbus.models import DeadLetter, OutboxEvent
from eventbus.redis.transport import Transport, TransportUnavailable, get_transport
from eventbus.runtime.heartbeats import Heartbeat, live_processes
from eventbus.runtime.monitor import GroupState, pipeline_backlog

__all__ = ["PipelineStatus", "pipeline_status", "report_also"]


@dataclass
class PipelineStatus:
    processes: list[Heartbeat] = field(default_factory=list)
    groups: list[GroupState] = field(default_factory=list)
    consumers_by_group: dict[str, int] = field(default_factory=dict)
    relays: int = 0
    outbox_backlog: int = 0
    outbox_oldest_age_s: float = 0.0
    dead_letters: int = 0
    redis: str = "ok"
    problems: list[str] = field(default_factory=list)
    # What the apps add (report_also): name -> {"summary": one line, ...their figures}.
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        return data


# name -> a reader of the app's state: (figures with a one-line "summary", problems).
Extra = Callable[["PipelineStatus"], tuple[dict[str, Any], list[str]]]
_extras: dict[str, Extra] = {}


def report_also(name: str, read: Extra) -> None:
    """Add an app's own backlog to the status (an app calls this from its AppConfig.ready): the
    bus knows no app, the app knows what is wrong with it."""
    _extras[name] = read


def pipeline_status(
    *, transport: Transport | None = None, outbox_max_age_s: float = 60.0, lag_max: int = 10_000
) -> PipelineStatus:
    """Read the state, and list as problems: a group without a live consumer, no live relay,
    Redis unreachable, an outbox event unpublished for longer than outbox_max_age_s, a group
    whose lag on a stream is over lag_max."""
    status = PipelineStatus()
    outbox = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    status.outbox_backlog = outbox["n"]
    status.outbox_oldest_age_s = round(time.time() - outbox["oldest"].timestamp(), 3) if outbox["oldest"] else 0.0
    status.dead_letters = DeadLetter.objects.filter(status=DeadLetter.Status.DEAD).count()
    try:
        transport = transport or get_transport()
        status.processes = live_processes(transport)
        status.groups = pipeline_backlog(transport).groups
    except TransportUnavailable:
        status.redis = "unavailable"
        status.problems.append("Redis is unreachable: nothing is published or consumed until it is back")
    status.consumers_by_group = {
        g: sum(1 for p in status.processes if p.role == "consumer" and g in p.groups) for g in registry.groups()
    }
    status.relays = sum(1 for p in status.processes if p.role == "relay")
    if status.redis == "ok":
        status.problems += [f"group {g} has no live consumer" for g, n in status.consumers_by_group.items() if not n]
        if not status.relays:
            status.problems.append("no outbox relay is alive")
        status.problems += [
            f"group {g.group} is {g.lag} entries behind on {g.stream}" for g in status.groups if g.lag > lag_max
        ]
    if status.outbox_oldest_age_s > outbox_max_age_s:
        status.problems.append(f"the oldest unpublished outbox event is {status.outbox_oldest_age_s:.0f} s old")
    for name, read in _extras.items():
        status.extras[name], problems = read(status)
        status.problems += problems
    return status
