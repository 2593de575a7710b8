"""What the operations console shows, read in one go and shaped as JSON for its script: each
group's streams and live consumers, the relay, events handled per second and stage latencies
over the last 15 minutes, dead letters by group and error, orders by status in the last hour,
and the problems `eventbus.runtime.status` finds.

Everything here reads; the console's buttons call the event bus's own services. Times are
seconds since the epoch (the heartbeats' unit), and the state carries the server's `now`, so
the page says "3 s ago" by the server's clock, not the browser's.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from dashboard.invariants import run_checks
from eventbus.messages import registry
from eventbus.models import DeadLetter
from eventbus.redis import timeseries
from eventbus.redis.transport import TransportUnavailable, get_transport
from eventbus.runtime import partitions
from eventbus.runtime.status import PipelineStatus, pipeline_status
from orders.models import Order

__all__ = [
    "STAGES",
    "WINDOW_S",
    "console_state",
    "deadletters_waiting",
    "invariants_report",
]

STAGES = ("reserved", "confirmed", "notified")
OUTCOMES = ("ok", "duplicate", "retry", "dead")
WINDOW_S = 900  # the charts' 15 minutes
ORDERS_WINDOW = dt.timedelta(hours=1)
# Dead letters stay on the console while waiting or in flight, and for this long once settled,
# so a replay is seen to resolve without the list growing with every one ever handled.
SETTLED_SHOWN_FOR = dt.timedelta(hours=1)
DEAD_LETTER_ROWS = 50
MAX_LINK_QUERY = 2000
ERROR_SEARCH_CHARS = 200
# The latency histogram's largest finite bound: a quantile past it has no number to show.
LATENCY_CEILING_S = max(b for b in timeseries.LATENCY_BOUNDS if b != float("inf"))
# Each point of a latency chart is over the last minute (6 buckets), not its own 10 s: orders
# arrive a few a minute in a quiet shop, and a line through them says more than dots.
LATENCY_TRAILING_BUCKETS = 6


def console_state() -> dict[str, Any]:
    """The whole console as JSON-ready data. Redis down is one of its problems, never an error."""
    status = pipeline_status()
    now = time.time()
    series = _series(status)
    return {
        "now": now,
        "healthy": not status.problems,
        "redis": status.redis,
        "problems": status.problems,
        "bucket_s": timeseries.BUCKET_S,
        "window_s": WINDOW_S,
        "latency_ceiling_s": LATENCY_CEILING_S,
        "groups": [_group(group, status, series.get(f"handled:{group}", []), now=now) for group in registry.groups()],
        "relay": {
            "alive": _alive(status, status.relays),
            # Whether the committing processes publish their own events, leaving the relay the
            # backstop (it publishes only what they could not), or the relay publishes them all.
            "backstop": settings.EVENTBUS["PUBLISH_ON_COMMIT"],
            "processes": [asdict(p) for p in status.processes if p.role == "relay"],
            "outbox_backlog": status.outbox_backlog,
            "outbox_oldest_age_s": status.outbox_oldest_age_s,
        },
        "stages": [_stage(stage, series.get(f"stage:{stage}", [])) for stage in STAGES],
        "dead_letters_waiting": status.dead_letters,
        "email": status.extras.get("email"),
        "dead_letters": _dead_letter_rows(since=timezone.now() - SETTLED_SHOWN_FOR),
        "orders": _orders_by_status(since=timezone.now() - ORDERS_WINDOW),
    }


def deadletters_waiting(*, group: str, error: str) -> QuerySet[DeadLetter]:
    """The dead letters of one console row that still wait for a decision (replay or discard)."""
    return DeadLetter.objects.filter(consumer_group=group, error=error, status=DeadLetter.Status.DEAD)


def invariants_report() -> list[dict[str, Any]]:
    """The invariants' verdicts (dashboard.invariants), with the thresholds `check_invariants`
    uses by default."""
    checks = run_checks(outbox_max_age=dt.timedelta(seconds=60), pending_max_age=dt.timedelta(minutes=5))
    return [{"name": c.name, "ok": c.ok, "total": c.total, "violations": c.violations} for c in checks]


Buckets = list[tuple[int, dict[str, int]]]


def _series(status: PipelineStatus) -> dict[str, Buckets]:
    names = [*(f"handled:{g}" for g in registry.groups()), *(f"stage:{s}" for s in STAGES)]
    if status.redis != "ok":
        return {}  # already a problem; the charts stay empty rather than wait on a dead server
    try:
        return timeseries.read(get_transport(), names, seconds=WINDOW_S)
    except TransportUnavailable:
        status.problems.append("Redis stopped answering: the figures over time could not be read")
        return {}


def _group(group: str, status: PipelineStatus, handled: Buckets, *, now: float) -> dict[str, Any]:
    consumers = [asdict(p) for p in status.processes if p.role == "consumer" and group in p.groups]
    return {
        "group": group,
        "alive": _alive(status, len(consumers)),
        "consumers": consumers,
        "streams": [
            {
                "stream": g.stream,
                "owner": g.owner,
                "lag": g.lag,
                "pending": g.pending,
                "retrying": g.retrying,
                "partition": partitions.logical(g.stream)[1] is not None,
            }
            for g in status.groups
            if g.group == group
        ],
        "handled": _handled(handled, now=now),
    }


def _alive(status: PipelineStatus, processes: int) -> bool | None:
    """Whether live processes were seen; None (unknown) when Redis, which holds the heartbeats,
    could not be read: not knowing is not the same as seeing none."""
    return processes > 0 if status.redis == "ok" else None


def _handled(buckets: Buckets, *, now: float) -> dict[str, Any]:
    """Events handled (ok or duplicate) per second in each bucket, and the outcomes' totals.

    The newest bucket is still filling: its rate is over the seconds it has had, so the chart's
    last point does not dip. The headline rate is the last complete bucket's."""
    totals = dict.fromkeys(OUTCOMES, 0)
    points = []
    for start, counts in buckets:
        for outcome in OUTCOMES:
            totals[outcome] += counts.get(outcome, 0)
        seconds = min(timeseries.BUCKET_S, max(now - start, 1.0))
        points.append([start, round((counts.get("ok", 0) + counts.get("duplicate", 0)) / seconds, 2)])
    return {
        "per_second": points,
        "last_per_second": points[-2][1] if len(points) > 1 else 0,
        "totals": totals,
    }


def _stage(stage: str, buckets: Buckets) -> dict[str, Any]:
    """Placement-to-stage latency: p50 and p99 over the window, and a point per bucket over the
    trailing minute for the chart's lines. The window's quantile is its histogram bucket's upper
    bound (at most that); a point's is placed within its bucket, so the lines move with the
    latencies rather than jump between bounds. None past the last finite bound (count says
    whether there was anything to measure)."""
    merged: Counter[str] = Counter()
    points = []
    for i, (start, histogram) in enumerate(buckets):
        merged.update(histogram)
        trailing: Counter[str] = Counter()
        for _, earlier in buckets[max(0, i + 1 - LATENCY_TRAILING_BUCKETS) : i + 1]:
            trailing.update(earlier)
        points.append([start, _within(trailing, 0.5), _within(trailing, 0.99), sum(trailing.values())])
    return {
        "stage": stage,
        "points": points,
        "p50": _quantile(merged, 0.5),
        "p99": _quantile(merged, 0.99),
        "count": sum(merged.values()),
    }


def _quantile(histogram: dict[str, int], q: float) -> float | None:
    value = timeseries.quantile(histogram, q)
    # JSON has no infinity: the overflow bucket becomes None, told apart from "no data" by count.
    return None if value is None or value == float("inf") else value


def _within(histogram: dict[str, int], q: float) -> float | None:
    """The q-quantile placed within its histogram bucket, geometrically (the bounds grow about
    2.5 times a step, and the chart is drawn on a log scale); None when empty or past the last
    finite bound."""
    counts = sorted((float(bound), n) for bound, n in histogram.items() if n)
    rank, seen, lower = q * sum(n for _, n in counts), 0, timeseries.LATENCY_BOUNDS[0] / 2
    for bound, n in counts:
        if seen + n >= rank:
            if bound == float("inf"):
                return None
            previous = [b for b in timeseries.LATENCY_BOUNDS if b < bound]
            lower = previous[-1] if previous else lower
            return round(lower * (bound / lower) ** ((rank - seen) / n), 6)
        seen += n
    return None


def _dead_letter_rows(*, since: dt.datetime) -> list[dict[str, Any]]:
    status = DeadLetter.Status
    rows = (
        DeadLetter.objects.filter(Q(status__in=[status.DEAD, status.REPLAYED]) | Q(resolved_at__gte=since))
        .values("consumer_group", "error")
        .annotate(
            dead=Count("id", filter=Q(status=status.DEAD)),
            replayed=Count("id", filter=Q(status=status.REPLAYED)),
            resolved=Count("id", filter=Q(status=status.RESOLVED)),
            discarded=Count("id", filter=Q(status=status.DISCARDED)),
            newest=Max("last_failed_at"),
        )
        .order_by("-newest", "consumer_group")[:DEAD_LETTER_ROWS]
    )
    return [
        {
            "group": row["consumer_group"],
            "error": row["error"],
            "state": _dead_letter_state(row),
            "dead": row["dead"],
            "replayed": row["replayed"],
            "resolved": row["resolved"],
            "discarded": row["discarded"],
            "newest": row["newest"].timestamp(),
            "admin_url": _admin_list_url(group=row["consumer_group"], error=row["error"]),
        }
        for row in rows
    ]


def _admin_list_url(*, group: str, error: str) -> str:
    """The admin's list of one row's dead letters, by its own filters (list_filter). An error too
    long for a URL (the web refuses request lines past 4 KB) is searched for by its start instead,
    which lists those letters and, rarely, a few whose errors start the same."""
    changelist = reverse("admin:eventbus_deadletter_changelist")
    query = urlencode({"consumer_group": group, "error": error})
    if len(query) > MAX_LINK_QUERY:
        query = urlencode({"consumer_group": group, "q": error[:ERROR_SEARCH_CHARS]})
    return f"{changelist}?{query}"


def _dead_letter_state(row: dict[str, Any]) -> str:
    """The row's state as an operator reads it: anything still dead needs them first."""
    for state in ("dead", "replayed", "resolved"):
        if row[state]:
            return state
    return "discarded"


def _orders_by_status(*, since: dt.datetime) -> dict[str, Any]:
    counts = dict(Order.objects.filter(created_at__gte=since).order_by().values_list("status").annotate(n=Count("id")))
    return {
        "since": since.timestamp(),
        # Every status, in the model's order, with 0 where no order has it.
        "by_status": [
            {"status": choice.value, "label": choice.label, "count": counts.get(choice.value, 0)}
            for choice in Order.Status
        ],
    }
