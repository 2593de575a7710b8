"""Heartbeats and time buckets, written to and read from the real Redis."""

from __future__ import annotations

import time

import pytest

from eventbus.redis import timeseries
from eventbus.runtime import heartbeats
from eventbus.runtime.heartbeats import Heartbeat

pytestmark = pytest.mark.django_db


def test_a_beat_is_seen_until_the_process_forgets_it(transport):
    heartbeats.send(transport, Heartbeat(role="consumer", name="c-1", groups=["inventory"], processed=7))

    seen = heartbeats.live_processes(transport)
    heartbeats.forget(transport, "c-1")

    assert [(b.name, b.groups, b.processed) for b in seen] == [("c-1", ["inventory"], 7)]
    assert heartbeats.live_processes(transport) == []


def test_a_beat_that_is_not_renewed_expires(transport, monkeypatch):
    monkeypatch.setattr(heartbeats, "BEAT_TTL_S", 1)
    heartbeats.send(transport, Heartbeat(role="relay", name="r-1"))

    time.sleep(1.2)

    assert heartbeats.live_processes(transport) == []


def test_counts_flushed_by_several_processes_add_up_in_their_bucket(transport):
    one, two = timeseries.Recorder(), timeseries.Recorder()
    one.add("handled:inventory", "ok", 3)
    two.add("handled:inventory", "ok", 2)
    two.add("handled:inventory", "dead")

    one.flush(transport)
    two.flush(transport)
    buckets = timeseries.read(transport, ["handled:inventory"], seconds=60)["handled:inventory"]

    assert sum(counts.get("ok", 0) for _, counts in buckets) == 5
    assert sum(counts.get("dead", 0) for _, counts in buckets) == 1
    assert all(start % timeseries.BUCKET_S == 0 for start, _ in buckets)


def test_nothing_counted_is_nothing_written(transport):
    timeseries.Recorder().flush(transport)

    assert all(
        counts == {} for _, counts in timeseries.read(transport, ["handled:orders"], seconds=30)["handled:orders"]
    )


def test_latency_percentiles_come_from_the_histogram_buckets(transport):
    recorder = timeseries.Recorder()
    for seconds in [0.003] * 90 + [0.4] * 9 + [7.0]:
        recorder.observe("stage:confirmed", seconds)
    recorder.flush(transport)

    merged: dict[str, int] = {}
    for _, counts in timeseries.read(transport, ["stage:confirmed"], seconds=60)["stage:confirmed"]:
        for bound, n in counts.items():
            merged[bound] = merged.get(bound, 0) + n

    assert timeseries.quantile(merged, 0.5) == 0.005
    assert timeseries.quantile(merged, 0.99) == 0.5
    assert timeseries.quantile(merged, 1.0) == 10.0
    assert timeseries.quantile({}, 0.5) is None
