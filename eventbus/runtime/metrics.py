"""The event bus's Prometheus metrics: counters and histograms each process keeps as it works,
and gauges read from Redis and the database when they are scraped.

With PROMETHEUS_MULTIPROC_DIR set (make run sets it), every process writes its counters to
files there and the web's /metrics adds them up (prometheus-client's multiprocess mode); each
long-running command can also serve its own with --metrics-port. Scrape one or the other,
never both, or everything is counted twice.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "BATCH_SIZE",
    "DURATION_BUCKETS",
    "EVENTS_HANDLED",
    "EVENTS_PUBLISHED",
    "HANDLER_DURATION",
    "PipelineCollector",
    "count_published",
]

# From a fraction of a millisecond (a handler in a batch) to a minute (a retried message).
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

EVENTS_PUBLISHED = Counter(
    "eventbus_events_published",
    "Events put on a stream, by whoever published them (the committing process or the relay).",
    ["stream", "type"],
)
EVENTS_HANDLED = Counter(
    "eventbus_events_handled",
    "Messages a consumer group finished with: ok (applied), duplicate (applied before), retry (failed, "
    "scheduled again), dead (dead-lettered).",
    ["group", "type", "outcome"],
)
HANDLER_DURATION = Histogram(
    "eventbus_handler_duration_seconds",
    "Time a handler took for the messages of one event type in a batch, per message.",
    ["group", "type"],
    buckets=DURATION_BUCKETS,
)
BATCH_SIZE = Histogram(
    "eventbus_batch_size",
    "Messages applied per batch (one transaction).",
    ["group"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)


_published: dict[tuple[str, str], Counter] = {}


def count_published(events: Iterable[tuple[str, str]]) -> None:
    """Count events put on streams: (stream, type) pairs, one per event. The series of each pair
    is found once (labels() takes a lock and checks its values on every call)."""
    for key, n in Tally(events).items():
        series = _published.get(key)
        if series is None:
            series = _published.setdefault(key, EVENTS_PUBLISHED.labels(*key))
        series.inc(n)


class PipelineCollector(Collector):
    """Gauges read at scrape time: each group's lag, pending and retrying messages, its live
    consumers (by heartbeat), dead letters by group and status, the outbox backlog and the age
    of its oldest unpublished event, and each stream's length. A source that refuses (the
    database, Redis) leaves its own gauges out of the scrape and says so in
    `eventshop_scrape_source_up{source}` (0); it never fails the scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import Error as DatabaseError

        from eventbus.redis.transport import TransportUnavailable

        up = GaugeMetricFamily(
            "eventshop_scrape_source_up",
            "1 when this scrape read the source (database, redis); 0 when it refused, and its gauges are missing.",
            labels=["source"],
        )
        for source, read, refusals in (
            ("database", self._database, DatabaseError),
            ("redis", self._redis, (TransportUnavailable, DatabaseError)),
        ):
            try:
                families = list(read())
            except refusals:
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _database(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count, Min

        from eventbus.messages import registry
        from eventbus.models import DeadLetter, OutboxEvent

        outbox = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
            n=Count("id"), oldest=Min("created_at")
        )
        backlog = GaugeMetricFamily("eventbus_outbox_backlog", "Outbox events not yet published.")
        backlog.add_metric([], outbox["n"])
        yield backlog
        oldest = GaugeMetricFamily(
            "eventbus_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event (0 when none)."
        )
        oldest.add_metric([], time.time() - outbox["oldest"].timestamp() if outbox["oldest"] else 0.0)
        yield oldest

        dead = GaugeMetricFamily(
            "eventbus_dead_letters", "Dead letters by group and status.", labels=["group", "status"]
        )
        counts = {
            (g, s): n
            for g, s, n in DeadLetter.objects.values_list("consumer_group", "status")
            .annotate(n=Count("id"))
            .values_list("consumer_group", "status", "n")
        }
        for group in registry.groups():
            for status in DeadLetter.Status.values:
                dead.add_metric([group, status], counts.get((group, status), 0))
        yield dead

    def _redis(self) -> Iterator[GaugeMetricFamily]:
        from eventbus.messages import registry
        from eventbus.redis.transport import get_transport
        from eventbus.runtime.heartbeats import live_processes
        from eventbus.runtime.monitor import group_states

        transport = get_transport()
        states = group_states(transport)
        alive = live_processes(transport)
        lengths = {s: transport.stream_length(s) for s in sorted({g.stream for g in states})}
        lag = GaugeMetricFamily(
            "eventbus_consumer_lag", "Entries on the stream not yet delivered to the group.", labels=["group", "stream"]
        )
        pending = GaugeMetricFamily(
            "eventbus_pending_messages", "Delivered to the group, not yet acknowledged.", labels=["group", "stream"]
        )
        retrying = GaugeMetricFamily("eventbus_retrying_messages", "Waiting for a retry.", labels=["group"])
        for g in states:
            lag.add_metric([g.group, g.stream], g.lag)
            pending.add_metric([g.group, g.stream], g.pending)
        for group in registry.groups():
            retrying.add_metric([group], sum(g.retrying for g in states if g.group == group))
        consumers = GaugeMetricFamily(
            "eventbus_consumers", "Consumers of the group alive by their heartbeat.", labels=["group"]
        )
        for group in registry.groups():
            consumers.add_metric([group], sum(1 for p in alive if p.role == "consumer" and group in p.groups))
        relays = GaugeMetricFamily("eventbus_relays", "Outbox relays alive by their heartbeat.")
        relays.add_metric([], sum(1 for p in alive if p.role == "relay"))
        length = GaugeMetricFamily("eventbus_stream_length", "Entries on the stream.", labels=["stream"])
        for stream, n in lengths.items():
            length.add_metric([stream], n)
        yield from (lag, pending, retrying, consumers, relays, length)
