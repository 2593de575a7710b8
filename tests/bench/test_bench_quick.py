"""`make bench QUICK=1`, run once by the suite so the benchmark cannot rot. It asserts what the
report must contain and what must hold whatever the machine (nothing lost, no 5xx), never a
speed: timings belong to `make bench`, not to tests."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

REQUIRED = [
    "relay_events_per_s", "relay_ceiling_xadd_per_s", "relay_ratio",
    "pipeline_orders_per_s", "pipeline_ceiling_commits_per_s", "pipeline_ratio",
    "latency_ms", "http_requests_per_s", "http_errors", "burst", "consumer_rss_growth_mb",
    "latency_hops_ms",
]  # fmt: skip


def test_quick_benchmark_reports_every_figure_the_issue_asks_for(quick_run):
    missing = [k for k in REQUIRED if k not in quick_run]
    assert not missing
    for stage in ("placed_reserved", "placed_confirmed", "placed_notified"):
        assert set(quick_run["latency_ms"][stage]) >= {"p50", "p95", "p99", "max"}
    assert set(quick_run["burst"]) >= {"accepted", "refused", "lost", "errors_5xx", "drain_s"}
    assert quick_run["quick"] is True
    # where the run's time went: every scenario, and starting the processes they share
    assert list(quick_run["scenario_seconds"]) == ["relay", "starting the fleet", *list(quick_run["scenarios"])[1:]]
    assert all(s >= 0 for s in quick_run["scenario_seconds"].values())
    assert "in all (relay " in quick_run["_stdout"]


def test_quick_benchmark_prints_a_table_and_draws_the_latency_plot(quick_run):
    assert "relay drain, events/s" in quick_run["_stdout"]
    assert "burst: drain, s" in quick_run["_stdout"]
    assert quick_run["_png"]


def test_quick_benchmark_loses_no_order_and_answers_no_5xx(quick_run):
    burst = quick_run["burst"]
    assert burst["lost"] == 0
    assert burst["errors_5xx"] == 0
    assert burst["accepted"] + burst["refused"] == 1000
    assert quick_run["http_errors"] == 0


def test_quick_benchmark_scales_over_partitions_and_consumers(quick_run):
    scale = quick_run["scenarios"]["scale"]
    assert scale["partitions"] == 8
    assert set(scale["runs"]) == {"1", "2"}  # the full run adds 4 consumers per group
    for run in scale["runs"].values():
        assert run["pipeline_orders_per_s"] > 0
        assert set(run["cpu_ms_per_order"]) == {"placing", "relay", "consumers", "postgresql", "redis"}
        assert run["placed_reserved_ms"]["n"] > 0
    assert "scale (one Redis): 8 partitions, 2 consumer(s)/group, orders/s" in quick_run["_stdout"]
    assert scale["cluster"] == {"skipped": "a quick run measures one Redis only"}


def test_quick_benchmark_runs_celery_beside_the_project_on_the_same_orders(quick_run):
    from django.db import connection

    peers = quick_run["scenarios"]["peers"]
    if connection.vendor != "postgresql":
        assert peers == {"skipped": "the peer runs on PostgreSQL only (the Celery baseline's database)"}
        return
    expected = {"throughput": 200, "100_per_s": 200, "20_per_s": 60}
    for side in ("celery", "project"):
        assert set(peers[side]) == set(expected)
        for phase, n in expected.items():
            figures = peers[side][phase]
            assert figures["orders"] == n
            # every order reached its confirmation and its notification on both sides
            assert figures["placed_confirmed"]["n"] == n
            assert figures["placed_notified"]["n"] == n
            assert figures["orders_per_s"] > 0
    assert set(peers["ratios"]) == {"orders_per_s"} | {
        f"{phase}_{stage}_{q}"
        for phase in ("100_per_s", "20_per_s")
        for stage in ("placed_confirmed", "placed_notified")
        for q in ("p50", "p99")
    }
    assert quick_run["peers"]["ratios"] == peers["ratios"]
    assert "peers: end-to-end orders/s, 200 orders from 4 threads" in quick_run["_stdout"]
    assert "peers @20/s: placed -> notified, ms" in quick_run["_stdout"]


def test_quick_benchmark_reports_where_each_millisecond_goes_per_rate(quick_run):
    hops = quick_run["latency_hops_ms"]
    assert set(hops) == {"20_per_s", "100_per_s", "500_per_s"}
    for table in hops.values():
        assert list(table)[::8] == ["placed -> published", "read -> notified"]
        assert len(table) == 9
        assert all(s["n"] > 0 for s in table.values())
    assert "hop @500/s: published -> read (inventory), ms" in quick_run["_stdout"]


def test_quick_benchmark_measures_the_databases_ceiling_and_leaves_no_scratch_table(quick_run):
    from django.db import connection

    database = quick_run["scenarios"]["pipeline"]["database"]
    if connection.vendor != "postgresql":
        assert database == {"skipped": "SQLite: no pgbench (the ceiling is measured on PostgreSQL)"}
        return
    assert database["ceiling_orders_per_s"] > 0
    assert set(database["orders_per_s"]) == {"place", "inventory", "orders", "notifications", "relay"}
    assert quick_run["pipeline_ratio_to_database"] == database["ratio_to_database"]
    assert "pipeline against the database's ceiling" in quick_run["_stdout"]
    left = [t for t in connection.introspection.table_names() if t.startswith(("bench_pg_", "bench_peers_"))]
    assert not left
