"""`manage.py status`, heartbeats and /readyz against real relay and consumer processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from rest_framework.test import APIClient

from eventbus.runtime import heartbeats
from eventbus.runtime.heartbeats import Heartbeat
from tests.processes import ROOT, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

GROUPS = ("inventory", "orders", "notifications")


def status(processes, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "status", *args],
        cwd=ROOT, env=processes.env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def names(transport) -> set[str]:
    return {b.name for b in heartbeats.live_processes(transport)}


@pytest.fixture
def pipeline(processes):
    processes.start_relay()
    for group in GROUPS:
        processes.start_consumer(group, f"st-{group}")
    return processes


def test_status_lists_every_live_process_and_exits_0(pipeline, transport):
    wait_until(lambda: {f"st-{g}" for g in GROUPS} <= names(transport), timeout=15, what="every consumer to beat")

    result = status(pipeline)

    assert result.returncode == 0, result.stdout + result.stderr
    for group in GROUPS:
        assert f"st-{group}" in result.stdout
    assert "relay" in result.stdout
    assert "OK: every group has a live consumer" in result.stdout


def test_a_killed_consumer_disappears_after_its_beat_expires_and_status_exits_1(pipeline, transport):
    wait_until(lambda: "st-orders" in names(transport), timeout=15, what="the orders consumer to beat")

    pipeline.kill("st-orders")
    wait_until(
        lambda: "st-orders" not in names(transport), timeout=heartbeats.BEAT_TTL_S + 5, what="the killed beat to expire"
    )
    result = status(pipeline, "--json")

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert "st-orders" not in {p["name"] for p in report["processes"]}
    assert report["consumers_by_group"]["orders"] == 0
    assert "group orders has no live consumer" in report["problems"]


def test_a_stopped_consumer_takes_its_beat_with_it_at_once(pipeline, transport):
    wait_until(lambda: "st-inventory" in names(transport), timeout=15, what="the inventory consumer to beat")

    assert pipeline.stop("st-inventory", signal.SIGTERM) == 0

    assert "st-inventory" not in names(transport)


def test_status_with_nothing_running_exits_1_and_says_what_is_missing(processes):
    result = status(processes)

    assert result.returncode == 1
    assert "PROBLEM: group inventory has no live consumer" in result.stdout
    assert "PROBLEM: no outbox relay is alive" in result.stdout


# --- /readyz ---------------------------------------------------------------------------------------


def beat_everything(transport) -> None:
    for group in GROUPS:
        heartbeats.send(transport, Heartbeat(role="consumer", name=f"r-{group}", groups=[group]))
    heartbeats.send(transport, Heartbeat(role="relay", name="r-relay"))


def test_readyz_is_ready_when_the_database_answers():
    response = APIClient().get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def monitor(settings) -> APIClient:
    """A client with the metrics token: the only kind (with staff) shown the pipeline's details."""
    settings.METRICS_TOKEN = "monitor-token"
    return APIClient(HTTP_AUTHORIZATION="Bearer monitor-token")


def test_readyz_for_the_pipeline_needs_a_consumer_in_every_group_and_a_relay(transport, settings):
    missing = monitor(settings).get("/readyz?pipeline=1")
    beat_everything(transport)
    ready = monitor(settings).get("/readyz?pipeline=1")

    assert missing.status_code == 503
    assert set(missing.json()["missing"]) == {f"consumer of group {g}" for g in GROUPS} | {"relay"}
    assert ready.status_code == 200
    assert ready.json()["consumers"] == dict.fromkeys(GROUPS, 1)


def test_with_redis_down_readyz_stays_ready_but_the_pipeline_is_not(redis_down, settings):
    plain = APIClient().get("/readyz")
    pipeline = monitor(settings).get("/readyz?pipeline=1")

    assert (plain.status_code, plain.json()["redis"]) == (200, "unavailable")
    assert pipeline.status_code == 503
    assert "redis" in pipeline.json()["missing"]
    assert "Error" not in pipeline.content.decode()
