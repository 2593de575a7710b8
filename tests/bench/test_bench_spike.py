"""The spike of `make bench QUICK=1` (tests/bench/conftest.py): 300 customers arriving at once,
then 50 staying for 5 s, against the web as the Procfile runs it. Checks that the report
accounts for every customer and request and that no order was lost or placed twice, never a
speed."""

from __future__ import annotations

import pytest

from tests.processes import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

OUTCOMES = ("taken", "refused", "other_4xx", "5xx", "other", "timed_out", "reset")
ANSWERED = ("taken", "refused", "other_4xx", "5xx", "other")


def test_every_arriving_customer_is_accounted_for_once(quick_run):
    spike = quick_run["scenarios"]["spike"]
    phase1 = spike["phase1"]

    assert spike["customers"] == phase1["customers"] == phase1["requests"] == phase1["keys"] == 300
    assert phase1["answered"] + phase1["timed_out"] + phase1["reset"] == spike["customers"]
    assert phase1["answered"] == sum(phase1[o] for o in ANSWERED)
    assert sum(phase1["statuses"].values()) == phase1["answered"] == phase1["latency_ms"]["n"]
    assert phase1["keys_taken"] == phase1["taken"]
    assert phase1["refused_with_retry_after"] + phase1["refused_without_retry_after"] == phase1["refused"]
    assert phase1["refused_with_json"] + phase1["refused_without_json"] == phase1["refused"]


def test_every_staying_customers_request_is_accounted_for(quick_run):
    phase2 = quick_run["scenarios"]["spike"]["phase2"]

    assert phase2["customers"] == 50
    assert phase2["requests"] == sum(phase2[o] for o in OUTCOMES) > 0
    assert phase2["answered"] + phase2["timed_out"] + phase2["reset"] == phase2["requests"]
    assert phase2["keys_taken"] + phase2["keys_abandoned"] == phase2["keys"]
    # A key is taken once: retries of a refused one do not count it again.
    assert phase2["keys_taken"] == phase2["taken"]


def test_no_order_is_lost_or_placed_twice_and_the_pipeline_drains(quick_run):
    spike = quick_run["scenarios"]["spike"]
    orders = spike["orders"]

    assert orders["lost"] == 0
    assert orders["duplicate_orders"] == 0
    assert orders["keys_with_duplicates"] == 0
    assert orders["wrong_id"] == 0
    assert orders["unknown"] == 0
    assert orders["phase1_told_taken"] == spike["phase1"]["taken"]
    assert orders["phase2_told_taken"] == spike["phase2"]["keys_taken"]
    assert orders["phase1_ghost"] == orders["phase1_created"] - orders["phase1_told_taken"]
    assert spike["drain"]["drained"]
    assert orders["still_pending"] == 0
    assert quick_run["goals_met"]["spike_lost"] is True
    assert quick_run["goals_met"]["spike_duplicate_orders"] is True


def test_the_report_names_the_web_it_measured_and_its_ceiling(quick_run):
    spike = quick_run["scenarios"]["spike"]

    procfile = (ROOT / "Procfile").read_text().splitlines()
    assert f"web: {spike['web']['command']}" in procfile
    assert spike["ceiling"]["xadd_per_s"] > 0
    assert "one XADD per call" in spike["ceiling"]["how"]
    assert spike["loadgen_cpu_s"] > 0
    assert "spike phase 1: answer latency, ms" in quick_run["_stdout"]
    assert "spike: duplicate orders per key" in quick_run["_stdout"]
    assert quick_run["_leftovers"] == []  # the customers' tokens are not left on disk
