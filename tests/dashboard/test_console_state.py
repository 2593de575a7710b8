"""The console's one JSON endpoint (/ops/state.json) against what the pipeline really left: beats
and time buckets written to the real Redis the way the relay and consumers write them, streams
and groups made with the real transport, dead letters and orders made by the real services."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.db.models import F
from django.test import Client
from django.utils import timezone

from eventbus.models import DeadLetter
from eventbus.redis import timeseries
from eventbus.redis.transport import Message
from eventbus.runtime import heartbeats
from eventbus.runtime.heartbeats import Heartbeat
from eventbus.store.deadletters import deadletter_record
from inventory.models import Product
from orders.models import Order
from orders.services import order_cancel, order_place
from tests.factories import ProductFactory, StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(StaffFactory())
    return client


def console_state(client: Client) -> dict[str, Any]:
    response = client.get("/ops/state.json")
    assert response.status_code == 200, response.content
    return response.json()


def group(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in state["groups"] if g["group"] == name)


def dead_letter(group: str, error: str, message_id: str) -> DeadLetter:
    """A message `group` gave up on, recorded by the consumer's own service."""
    message = Message("orders", message_id, {b"type": b"orders.OrderPlaced", b"event": b"{}"})
    return deadletter_record(group=group, message=message, error=error, traceback="", attempts=5)


def bucket_start(at: float) -> int:
    return int(at // timeseries.BUCKET_S) * timeseries.BUCKET_S


def test_a_live_consumer_is_listed_under_its_group_with_its_heartbeat_figures(staff_client, transport):
    started = time.time() - 120
    beat = Heartbeat(
        role="consumer", name="inventory-1", groups=["inventory"], streams=["orders"], host="shop-1", pid=4242,
        started_at=started, last_batch_at=started + 100, batch_size=5, processed=26, duplicates=1, retries=2,
        dead=3, partitions=["orders:0", "orders:1"],
    )  # fmt: skip
    heartbeats.send(transport, beat)

    state = console_state(staff_client)

    inventory = group(state, "inventory")
    assert inventory["alive"] is True
    [consumer] = inventory["consumers"]
    figures = ["name", "host", "pid", "started_at", "last_batch_at", "batch_size", "processed", "duplicates"]
    figures += ["retries", "dead", "partitions"]
    assert {k: consumer[k] for k in figures} == {
        "name": "inventory-1", "host": "shop-1", "pid": 4242, "started_at": started, "last_batch_at": started + 100,
        "batch_size": 5, "processed": 26, "duplicates": 1, "retries": 2, "dead": 3,
        "partitions": ["orders:0", "orders:1"],
    }  # fmt: skip
    assert consumer["beat_at"] == pytest.approx(state["now"], abs=5)


def test_a_group_without_a_live_consumer_is_shown_dead_and_listed_as_a_problem(staff_client, transport):
    heartbeats.send(transport, Heartbeat(role="consumer", name="inventory-1", groups=["inventory"]))

    state = console_state(staff_client)

    assert (group(state, "orders")["alive"], group(state, "orders")["consumers"]) == (False, [])
    assert "group orders has no live consumer" in state["problems"]
    assert "group inventory has no live consumer" not in state["problems"]
    assert state["healthy"] is False


def test_the_relay_is_alive_by_its_heartbeat_with_what_it_published(staff_client, transport):
    before = console_state(staff_client)
    heartbeats.send(transport, Heartbeat(role="relay", name="relay-1", published=120))

    after = console_state(staff_client)

    assert (before["relay"]["alive"], before["relay"]["processes"]) == (False, [])
    assert "no outbox relay is alive" in before["problems"]
    assert after["relay"]["alive"] is True
    assert [(p["name"], p["published"]) for p in after["relay"]["processes"]] == [("relay-1", 120)]
    assert "no outbox relay is alive" not in after["problems"]


@pytest.mark.parametrize("publish_on_commit", [True, False])
def test_the_relay_is_a_backstop_when_the_committing_processes_publish(staff_client, settings, publish_on_commit):
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": publish_on_commit}

    assert console_state(staff_client)["relay"]["backstop"] is publish_on_commit


def test_each_groups_lag_pending_and_retrying_are_shown_per_stream(staff_client, transport):
    transport.ensure_group("orders", "inventory")
    transport.publish([("orders", {"type": "tests.Nothing", "event": "{}"})] * 3)
    [delivered] = transport.read("inventory", "inventory-1", {"orders": ">"}, count=1, block_ms=None)
    transport.retries.schedule("inventory", {("orders", delivered.id): time.time() + 60})

    streams = group(console_state(staff_client), "inventory")["streams"]

    assert {s["stream"]: s for s in streams}["orders"] == {
        "stream": "orders", "lag": 2, "pending": 1, "retrying": 1, "owner": "", "partition": False,
    }  # fmt: skip


def test_the_outbox_backlog_is_shown_with_the_relay(staff_client, customer):
    product = ProductFactory()  # its ProductChanged waits in the outbox too
    before = console_state(staff_client)["relay"]
    order_place(customer=customer, items=[(product.pk, 1)])

    after = console_state(staff_client)["relay"]

    assert before["outbox_backlog"] > 0
    assert after["outbox_backlog"] == before["outbox_backlog"] + 1
    assert after["outbox_oldest_age_s"] >= before["outbox_oldest_age_s"] > 0


def test_events_handled_per_second_come_from_the_groups_ten_second_buckets(staff_client, transport):
    bucket = bucket_start(time.time()) - 30  # complete, and well inside the 15 minutes
    recorder = timeseries.Recorder()
    for outcome, n in {"ok": 50, "duplicate": 5, "retry": 2, "dead": 1}.items():
        recorder.add("handled:inventory", outcome, n, at=bucket + 1)
    recorder.flush(transport)

    state = console_state(staff_client)

    handled = group(state, "inventory")["handled"]
    rates = dict(handled["per_second"])
    assert rates[bucket] == 5.5, "ok and duplicates over the bucket's 10 s"
    assert sum(rates.values()) == 5.5
    assert handled["totals"] == {"ok": 50, "duplicate": 5, "retry": 2, "dead": 1}
    assert len(handled["per_second"]) == state["window_s"] // state["bucket_s"] + 1, "one point per bucket, now's too"
    assert group(state, "orders")["handled"]["totals"] == {"ok": 0, "duplicate": 0, "retry": 0, "dead": 0}


def test_the_headline_rate_is_the_last_complete_buckets(staff_client, transport):
    recorder = timeseries.Recorder()
    now = time.time()
    for seconds_ago in (30, 20, 10, 0):
        recorder.add("handled:orders", "ok", 30, at=now - seconds_ago)
    recorder.flush(transport)

    handled = group(console_state(staff_client), "orders")["handled"]

    # 30 in each complete bucket is 3/s; the bucket still filling has had fewer than 10 s.
    assert handled["last_per_second"] == 3.0
    assert handled["per_second"][-1][1] > 3.0


def test_stage_latencies_are_p50_and_p99_over_the_window_and_over_each_buckets_trailing_minute(staff_client, transport):
    now = time.time()
    recent, earlier = bucket_start(now - 60), bucket_start(now - 300)
    recorder = timeseries.Recorder()
    for seconds in [0.003] * 90 + [0.4] * 9 + [7.0]:
        recorder.observe("stage:confirmed", seconds, at=recent + 1)
    for _ in range(10):
        recorder.observe("stage:confirmed", 0.02, at=earlier + 1)
    recorder.observe("stage:notified", 120.0, at=recent + 1)  # beyond the histogram's last bound
    recorder.flush(transport)

    stages = {s["stage"]: s for s in console_state(staff_client)["stages"]}

    confirmed = stages["confirmed"]
    assert (confirmed["p50"], confirmed["p99"], confirmed["count"]) == (0.005, 0.5, 110)
    points = {start: rest for start, *rest in confirmed["points"]}
    # Placed within their histogram buckets: 50th of 90 in (2, 5] ms, 99th the last in (0.2, 0.5] s.
    assert points[recent] == [pytest.approx(0.002 * 2.5 ** (50 / 90), abs=1e-6), 0.5, 100]
    assert points[earlier] == [pytest.approx(0.01 * 2**0.5, abs=1e-6), pytest.approx(0.01 * 2**0.99, abs=1e-6), 10]
    # Each point is the trailing minute: a line for a minute after the orders, then a gap.
    assert points[earlier + 50] == points[earlier]
    assert points[earlier + 60] == [None, None, 0]
    notified = stages["notified"]
    assert (notified["p50"], notified["p99"], notified["count"]) == (None, None, 1), "past the ceiling, not empty"
    assert (stages["reserved"]["p50"], stages["reserved"]["count"]) == (None, 0)
    assert list(stages) == ["reserved", "confirmed", "notified"]


def test_dead_letters_are_grouped_by_group_and_error_newest_first(staff_client):
    first = dead_letter("inventory", "IntegrityError: boom", "1-0")
    dead_letter("inventory", "IntegrityError: boom", "2-0")
    dead_letter("inventory", "ValueError: no such product", "3-0")
    dead_letter("notifications", "IntegrityError: boom", "4-0")
    newest = timezone.now() + dt.timedelta(seconds=5)
    DeadLetter.objects.filter(pk=first.pk).update(last_failed_at=newest)

    rows = console_state(staff_client)["dead_letters"]

    assert [(r["group"], r["error"], r["state"], r["dead"], r["replayed"], r["resolved"]) for r in rows] == [
        ("inventory", "IntegrityError: boom", "dead", 2, 0, 0),
        ("notifications", "IntegrityError: boom", "dead", 1, 0, 0),
        ("inventory", "ValueError: no such product", "dead", 1, 0, 0),
    ]
    assert rows[0]["newest"] == pytest.approx(newest.timestamp())


def test_a_dead_letter_rows_admin_link_lists_exactly_its_dead_letters():
    staff_client = Client()
    staff_client.force_login(StaffFactory(is_superuser=True))  # the admin's list asks for the view permission
    ids = {dead_letter("inventory", "IntegrityError: boom", f"{n}-0").pk for n in (1, 2)}
    dead_letter("inventory", "ValueError: no such product", "3-0")
    dead_letter("notifications", "IntegrityError: boom", "4-0")
    row = next(r for r in console_state(staff_client)["dead_letters"] if r["group"] == "inventory" and r["dead"] == 2)

    listing = staff_client.get(row["admin_url"])

    assert listing.status_code == 200
    assert {letter.pk for letter in listing.context["cl"].result_list} == ids


def test_an_error_too_long_for_a_url_still_links_to_its_dead_letters():
    staff_client = Client()
    staff_client.force_login(StaffFactory(is_superuser=True))
    long_error = "ValidationError: " + "items[0].quantity must be at least 1; " * 150
    letter = dead_letter("inventory", long_error, "1-0")
    dead_letter("inventory", "ValueError: no such product", "2-0")
    [row] = [r for r in console_state(staff_client)["dead_letters"] if r["error"] == long_error]

    listing = staff_client.get(row["admin_url"])

    assert len(row["admin_url"]) < 2100, "within the web's 4 KB request line"
    assert [found.pk for found in listing.context["cl"].result_list] == [letter.pk]


def test_a_settled_dead_letter_stays_on_the_console_for_an_hour(staff_client):
    resolved = dead_letter("inventory", "resolved lately", "1-0")
    settled_long_ago = dead_letter("inventory", "resolved long ago", "2-0")
    now = timezone.now()
    DeadLetter.objects.filter(pk=resolved.pk).update(status="resolved", resolved_at=now - dt.timedelta(minutes=10))
    long_ago = now - dt.timedelta(hours=2)
    DeadLetter.objects.filter(pk=settled_long_ago.pk).update(status="discarded", resolved_at=long_ago)

    rows = console_state(staff_client)["dead_letters"]

    assert [(r["error"], r["state"], r["dead"], r["resolved"]) for r in rows] == [("resolved lately", "resolved", 0, 1)]


def test_orders_of_the_last_hour_are_counted_by_status_with_0_for_the_others(staff_client, customer):
    product = ProductFactory()
    order_place(customer=customer, items=[(product.pk, 1)])
    order_cancel(order_id=order_place(customer=customer, items=[(product.pk, 1)]).id)
    earlier = order_place(customer=customer, items=[(product.pk, 1)])
    Order.objects.filter(pk=earlier.id).update(created_at=timezone.now() - dt.timedelta(hours=2))

    orders = console_state(staff_client)["orders"]

    assert orders["by_status"] == [
        {"status": "pending", "label": "Pending", "count": 1},
        {"status": "confirmed", "label": "Confirmed", "count": 0},
        {"status": "rejected", "label": "Rejected", "count": 0},
        {"status": "cancelled", "label": "Cancelled", "count": 1},
    ]


def test_redis_down_is_a_problem_and_the_database_figures_are_still_shown(staff_client, customer, redis_down):
    order_place(customer=customer, items=[(ProductFactory().pk, 1)])

    state = console_state(staff_client)

    assert state["redis"] == "unavailable"
    assert any(p.startswith("Redis is unreachable") for p in state["problems"])
    assert {s["status"]: s["count"] for s in state["orders"]["by_status"]}["pending"] == 1
    assert state["relay"]["outbox_backlog"] == 2, "the product's event and the order's"
    assert all(g["consumers"] == [] and g["streams"] == [] for g in state["groups"])
    assert {g["alive"] for g in state["groups"]} == {None}, "unknown, not dead: the beats are in Redis"
    assert state["relay"]["alive"] is None


@pytest.mark.parametrize("who", ["anonymous", "customer"])
@pytest.mark.parametrize("url", ["/ops/state.json", "/ops/invariants.json"])
def test_the_consoles_json_is_for_staff_only(url, who, customer):
    client = Client()
    if who == "customer":
        client.force_login(customer)

    response = client.get(url)

    assert response.status_code == 403
    assert response.json()["code"] == "not_staff"


def test_the_invariants_are_checked_on_demand_and_each_verdict_is_listed(staff_client, customer):
    order_place(customer=customer, items=[(ProductFactory().pk, 1)])

    checks = staff_client.get("/ops/invariants.json").json()["checks"]

    assert len(checks) == 5
    assert [(c["ok"], c["total"], c["violations"]) for c in checks] == [(True, 0, [])] * 5


def test_a_broken_invariant_is_listed_as_failed_with_its_violation(staff_client):
    ProductFactory(sku="LEAKY")
    Product.objects.filter(sku="LEAKY").update(stock=F("stock") + 1)  # stock from nowhere

    checks = staff_client.get("/ops/invariants.json").json()["checks"]

    failed = [c for c in checks if not c["ok"]]
    assert [(c["total"], len(c["violations"])) for c in failed] == [(1, 1)]
    assert failed[0]["violations"][0].startswith("LEAKY:")
