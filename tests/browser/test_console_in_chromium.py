"""The operations console in real Chromium, under the enforced Content-Security-Policy: staff reach
it from the admin's index, watch orders placed through the API and the real relay and consumers
at work without reloading the page, replay a dead letter and see it resolve, and read the
figures over time it draws from the heartbeats and time buckets. Each test fails on any CSP
violation, console error or page error (tests/browser/conftest.py).

`UPDATE_SCREENSHOTS=1` also writes the console's screenshot to docs/ops-console.png; without
it the screenshot goes to the test's temporary directory, so a test run leaves the repository as
it found it."""

from __future__ import annotations

import json
import os
import random
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect
from pytest_django.live_server_helper import LiveServer
from rest_framework.authtoken.models import Token

from eventbus.models import DeadLetter, OutboxEvent
from eventbus.redis import timeseries
from eventbus.redis.transport import Message, Transport
from eventbus.runtime import heartbeats
from eventbus.runtime.heartbeats import Heartbeat
from eventbus.store.deadletters import deadletter_record
from inventory.models import Product, Reservation
from orders.services import order_cancel, order_place
from tests.browser.test_pages_in_chromium import contrast
from tests.browser.watch import Watched, sign_in
from tests.factories import ProductFactory, StaffFactory, UserFactory
from tests.processes import ROOT, Processes

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = ROOT / "docs" / "ops-console.png"
VIEWPORT = {"width": 1280, "height": 900}


def place_order_through_the_api(live_server: LiveServer, customer: AbstractBaseUser, product_id: int) -> str:
    """POST /api/orders/ over HTTP with the customer's token, as a client of the shop does."""
    token, _ = Token.objects.get_or_create(user=customer)
    request = urllib.request.Request(
        f"{live_server.url}/api/orders/",
        data=json.dumps({"items": [{"product_id": product_id, "quantity": 1}]}).encode(),
        headers={"Authorization": f"Token {token.key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 201
        return json.load(response)["id"]


def open_console(tab: Watched) -> Page:
    """Staff sign in to the admin and follow its index's link to the console."""
    page = tab.page
    sign_in(tab, StaffFactory(is_superuser=True), at="/admin/login/?next=/admin/")
    page.get_by_role("link", name="Operations console").click()
    expect(page.locator("h1")).to_have_text("Operations")
    # Survives only as long as the document does: gone if anything reloads the page.
    page.evaluate("window.__sameDocument = true")
    return page


def still_the_same_document(page: Page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def order_count(page: Page, status: str) -> Locator:
    return page.locator(f'#ops-orders td[data-status="{status}"]')


def start_the_pipeline(processes: Processes) -> None:
    """The relay and a consumer of each group, as real `manage.py` processes."""
    processes.start_relay()
    for group in ("inventory", "orders", "notifications"):
        processes.start_consumer(group, f"{group}-1")


def test_orders_placed_through_the_api_are_counted_as_the_real_pipeline_confirms_them(tab, live_server, processes):
    customer, product = UserFactory(), ProductFactory(stock=20)
    start_the_pipeline(processes)
    page = open_console(tab)
    expect(order_count(page, "confirmed")).to_have_text("0")

    for _ in range(4):
        place_order_through_the_api(live_server, customer, product.pk)

    expect(order_count(page, "confirmed")).to_have_text("4", timeout=60_000)
    for status in ("pending", "rejected", "cancelled"):
        expect(order_count(page, status)).to_have_text("0")
    assert still_the_same_document(page), "the page was reloaded"
    tab.check()


def test_the_real_relay_and_consumers_figures_rise_on_the_console(tab, live_server, processes):
    customer, product = UserFactory(), ProductFactory(stock=20)
    start_the_pipeline(processes)
    page = open_console(tab)

    for _ in range(4):
        place_order_through_the_api(live_server, customer, product.pk)

    expect(page.locator("#ops-relay .state")).to_have_text("alive")
    for group in ("inventory", "orders", "notifications"):
        page.wait_for_function(
            """([group, n]) => [...document.querySelectorAll(`.ops-group[data-group="${group}"] td.processed`)]
                 .some((td) => Number(td.textContent.replace(/,/g, "")) >= n)""",
            arg=[group, 4],
            timeout=60_000,
        )
    assert still_the_same_document(page), "the page was reloaded"
    tab.check()


def dead_letter_for_inventory(product: Product) -> DeadLetter:
    """An order whose OrderPlaced the inventory group gave up on: the outbox's own envelope,
    parked the way the consumer parks a message it cannot process. The relay is not running,
    so inventory sees the event only when it is replayed."""
    placed = order_place(customer=UserFactory(), items=[(product.pk, 2)])
    row = OutboxEvent.objects.get(aggregate_id=str(placed.id), event_type="orders.OrderPlaced")
    message = Message("orders", "1-1", {b"type": row.event_type.encode(), b"event": row.body.encode()})
    return deadletter_record(
        group="inventory", message=message, error="OperationalError: the database went away", traceback="", attempts=5
    )


def test_a_dead_letter_replayed_from_the_console_shows_resolved_once_the_consumer_processes_it(
    tab, settings, processes
):
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": False}  # events wait for a relay: none runs
    product = ProductFactory(stock=10)
    letter = dead_letter_for_inventory(product)
    processes.start_consumer("inventory", "inventory-1")
    page = open_console(tab)
    row = page.locator("#ops-dead-letters tbody tr", has_text="the database went away")
    expect(row.locator("td").nth(2)).to_have_text("dead")
    expect(row.locator("td").nth(3)).to_have_text("1")

    row.get_by_role("button", name="Replay").click()

    expect(page.locator("#ops-notice")).to_have_text("Replayed 1 dead letter(s) to inventory.")
    expect(row.locator("td").nth(2)).to_have_text("resolved")
    expect(row.locator("td").nth(3)).to_have_text("0")
    expect(row.locator("td").nth(5)).to_have_text("1")
    expect(row.get_by_role("button", name="Replay")).to_be_disabled()
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetter.Status.RESOLVED
    assert Product.objects.get(pk=product.pk).stock == 8, "the replayed event was applied"
    assert Reservation.objects.filter(product_id=product.pk).count() == 1
    assert still_the_same_document(page), "the page was reloaded"
    tab.check()


@contextmanager
def beating(transport: Transport, beats: list[Heartbeat]) -> Iterator[None]:
    """Keep these heartbeats alive, every BEAT_INTERVAL_S, as running processes do."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            for beat in beats:
                heartbeats.send(transport, beat)
            stop.wait(heartbeats.BEAT_INTERVAL_S)

    thread = threading.Thread(target=run, name="beats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def record_fifteen_minutes(transport: Transport) -> None:
    """Events handled and stage latencies in every 10-second bucket of the last 14 minutes (all
    of them inside the console's 15 however long the test takes), as the consumers flush them:
    100 orders per bucket, confirmed in 10 ms at p50 and 50 ms at p99."""
    rng = random.Random(10)
    recorder = timeseries.Recorder()
    now = time.time()
    for seconds_ago in range(0, 840, timeseries.BUCKET_S):
        at = now - seconds_ago
        for group, base in (("inventory", 60), ("orders", 55), ("notifications", 30)):
            recorder.add(f"handled:{group}", "ok", base + rng.randint(-15, 15), at=at)
        for stage, fast, slow in (("reserved", 0.004, 0.03), ("confirmed", 0.008, 0.04), ("notified", 0.09, 0.8)):
            for _ in range(98):
                recorder.observe(f"stage:{stage}", fast * rng.uniform(0.6, 1.0), at=at)
            for _ in range(2):
                recorder.observe(f"stage:{stage}", slow, at=at)
    recorder.add("handled:inventory", "retry", 3, at=now - 200)
    recorder.add("handled:inventory", "dead", 1, at=now - 200)
    recorder.flush(transport)


def the_pipelines_processes() -> list[Heartbeat]:
    """Two consumers of each group and a relay, two minutes into their work."""
    started = time.time() - 125
    beats = [Heartbeat(role="relay", name="relay-1", host="shop-1", pid=4001, started_at=started, published=93_120)]
    for group, streams, pid, processed in (
        ("inventory", ["orders"], 4100, 46_512),
        ("orders", ["inventory"], 4200, 42_907),
        ("notifications", ["orders"], 4300, 24_110),
    ):
        for n in (1, 2):
            beat = Heartbeat(
                role="consumer", name=f"{group}-{n}", groups=[group], streams=streams, host="shop-1",
                pid=pid + n, started_at=started, last_batch_at=time.time() - 1, batch_size=n * 4,
                processed=processed // n, duplicates=n - 1, retries=3 if (group, n) == ("inventory", 1) else 0,
                dead=int(group == "inventory"), partitions=["inventory:0", "inventory:1"] if group == "orders" else [],
            )  # fmt: skip
            beats.append(beat)
    return beats


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_the_console_draws_processes_charts_latencies_and_dead_letters_from_the_pipelines_figures(
    tab, transport, pump, tmp_path
):
    customer, product = UserFactory(), ProductFactory(stock=100)
    for _ in range(6):
        order_place(customer=customer, items=[(product.pk, 1)])
    order_cancel(order_id=order_place(customer=customer, items=[(product.pk, 1)]).id)
    pump()  # the real consumers, in-process: orders confirmed
    order_place(customer=customer, items=[(product.pk, 1)])
    record_fifteen_minutes(transport)
    message = Message("orders", "1-1", {b"type": b"orders.OrderPlaced", b"event": b"{}"})
    error = "ValidationError: payload failed validation: items[0].quantity must be at least 1"
    deadletter_record(group="inventory", message=message, error=error, traceback="", attempts=1)
    message = Message("inventory", "1-2", {b"type": b"inventory.StockReserved", b"event": b"{}"})
    error = "OperationalError: the database went away"
    settled = deadletter_record(group="orders", message=message, error=error, traceback="", attempts=5)
    DeadLetter.objects.filter(pk=settled.pk).update(status=DeadLetter.Status.RESOLVED, resolved_at=timezone.now())
    tab.page.set_viewport_size(VIEWPORT)

    with beating(transport, the_pipelines_processes()):
        page = open_console(tab)
        inventory = page.locator('.ops-group[data-group="inventory"]')
        first = inventory.locator("tbody tr", has_text="inventory-1")
        expect(first.locator("td.processed")).to_have_text("46,512")
        expect(first.locator("td.dead")).to_have_text("1")
        expect(first.locator("td.batch")).to_have_text("4")
        expect(first.locator("td").nth(3)).to_have_text("2 min ago")
        expect(inventory.locator("h3 .state")).to_have_text("2 live consumers")
        orders = page.locator('.ops-group[data-group="orders"]')
        expect(orders.locator("tbody tr", has_text="orders-1").locator(".partitions")).to_have_text(
            "partitions inventory:0, inventory:1"
        )
        expect(first.locator(".partitions")).to_be_hidden()  # its heartbeat lists none
        expect(page.locator("#ops-relay .state")).to_have_text("alive")
        expect(page.locator("#ops-relay td.published")).to_have_text("93,120")
        expect(page.locator('.ops-stage[data-stage="confirmed"] .p50')).to_have_text("10 ms")
        expect(page.locator('.ops-stage[data-stage="confirmed"] .p99')).to_have_text("50 ms")
        # 8,400 written above, and the 6 orders the pipeline confirmed here, observed as they were.
        expect(page.locator('.ops-stage[data-stage="confirmed"] .count')).to_have_text("8,406")
        expect(order_count(page, "confirmed")).to_have_text("6")
        expect(order_count(page, "cancelled")).to_have_text("1")
        expect(order_count(page, "pending")).to_have_text("1")
        expect(order_count(page, "rejected")).to_have_text("0")
        expect(page.locator("#ops-problems li.success")).to_have_count(1)
        rate_line = inventory.locator("svg.ops-chart path.rate").get_attribute("d")
        assert rate_line.count("M") + rate_line.count("L") == 91, "a point per 10-second bucket over 15 minutes"
        latency_lines = page.locator('.ops-stage[data-stage="confirmed"] svg path')
        assert latency_lines.count() == 2

        background = page.locator("body").evaluate("body => getComputedStyle(body).backgroundColor")
        colours = page.locator(".state, td.bad, td.good").evaluate_all(
            "cells => cells.map((cell) => [cell.textContent, getComputedStyle(cell).color])"
        )
        screenshot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "ops-console.png"
        page.screenshot(path=str(screenshot))

    assert {text for text, _ in colours} >= {"alive", "2 live consumers", "dead", "resolved", "1"}
    assert [(text, colour) for text, colour in colours if contrast(colour, background) < 4.5] == []
    assert png_size(screenshot) == (1280, 900)
    assert screenshot.stat().st_size < 300_000
    assert still_the_same_document(page), "the page was reloaded"
    tab.check()


def test_redis_down_is_shown_as_a_problem_and_the_console_keeps_working(tab, request):
    # Signed in while Redis answers: signing in itself is refused while Redis is down (its rate
    # limit fails closed), an operator already signed in keeps the console.
    page = open_console(tab)
    request.getfixturevalue("redis_down")
    page.reload()

    expect(page.locator("#ops-problems li.error").first).to_contain_text("Redis is unreachable")
    expect(page.locator("#ops-relay .state")).to_have_text("unknown")
    expect(page.locator('.ops-group[data-group="inventory"] h3 .state')).to_have_text("consumers unknown")
    expect(order_count(page, "pending")).to_have_text("0")
    page.wait_for_timeout(2500)  # a poll or two, which must not fail either
    expect(page.locator("#ops-problems li.error").first).to_contain_text("Redis is unreachable")
    tab.check()
