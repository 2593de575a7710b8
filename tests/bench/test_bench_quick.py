"""`make bench QUICK=1`, run once by the suite so the benchmark cannot rot. It asserts what the
report must contain and what must hold whatever the machine (nothing lost, no 5xx), never a
speed: timings belong to `make bench`, not to tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.processes import ROOT, database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

REQUIRED = [
    "relay_events_per_s", "relay_ceiling_xadd_per_s", "relay_ratio",
    "pipeline_orders_per_s", "pipeline_ceiling_commits_per_s", "pipeline_ratio",
    "latency_ms", "http_requests_per_s", "http_errors", "burst", "consumer_rss_growth_mb",
]  # fmt: skip


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None, django_db_blocker: object) -> dict:
    """One quick run against the test database, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("bench")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DEBUG",)},
        "DJANGO_SETTINGS_MODULE": "config.settings_bench",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "bench-test-key-" + "0123456789abcdef" * 4,
        "DEBUG": "false",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((out / "latest.json").read_text())
    document["_stdout"] = result.stdout
    document["_png"] = (out / "latest.png").exists()
    return document


def test_quick_benchmark_reports_every_figure_the_issue_asks_for(quick_run):
    missing = [k for k in REQUIRED if k not in quick_run]
    assert not missing
    for stage in ("placed_reserved", "placed_confirmed", "placed_notified"):
        assert set(quick_run["latency_ms"][stage]) >= {"p50", "p95", "p99", "max"}
    assert set(quick_run["burst"]) >= {"accepted", "refused", "lost", "errors_5xx", "drain_s"}
    assert quick_run["quick"] is True


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
