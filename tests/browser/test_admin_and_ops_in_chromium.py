"""What staff see of the services' records, in real Chromium: the admin shows an order and a dead
letter without a way to edit or delete them (cancelling and discarding are the actions), the
order's timeline labels an event by where it is, and the operations page fits a 1280 px window,
says what the relay does and draws latencies as lines. Each test fails on any CSP violation,
console error or page error (tests/browser/conftest.py)."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from eventbus.models import DeadLetter
from eventbus.redis import timeseries
from eventbus.redis.transport import Message
from eventbus.store.deadletters import deadletter_record
from orders.services import order_place
from tests.browser.test_console_in_chromium import (
    beating,
    open_console,
    record_fifteen_minutes,
    the_pipelines_processes,
)
from tests.browser.watch import Watched, sign_in
from tests.factories import ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = {"width": 1280, "height": 800}


def sign_in_to_admin(tab: Watched, at: str) -> Page:
    sign_in(tab, StaffFactory(is_superuser=True), at=f"/admin/login/?next={at}")
    return tab.page


def test_the_admins_order_page_shows_every_field_as_text_with_no_save_and_no_delete(tab: Watched, settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 3600}
    order = order_place(customer=UserFactory(), items=[(ProductFactory().pk, 1)], idempotency_key="key-1")
    page = sign_in_to_admin(tab, f"/admin/orders/order/{order.id}/change/")

    expect(page.locator(".field-idempotency_key")).to_contain_text("key-1")
    assert page.locator('[name="idempotency_key"], [name="request_hash"], [name="status"]').count() == 0
    assert page.locator('[name="_save"], [name="_continue"]').count() == 0
    assert page.get_by_role("link", name="Delete").count() == 0
    tab.check()


def test_the_order_timeline_labels_a_published_event_no_group_applied_yet_as_in_the_outbox(
    tab: Watched, settings, relay
):
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 3600}
    order = order_place(customer=UserFactory(), items=[(ProductFactory().pk, 1)])
    relay()  # published; no consumer runs, so no group has applied it
    page = sign_in_to_admin(tab, f"/admin/orders/order/{order.id}/change/")

    row = page.locator("#order-timeline tbody tr", has_text="orders.OrderPlaced recorded")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text("outbox")
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"recorded, published \d\d:\d\d:\d\d$"))
    labels = page.locator("#order-timeline tbody tr").evaluate_all(
        "rows => rows.map((r) => [r.cells[2].textContent, r.cells[3].textContent])"
    )
    assert [what for kind, what in labels if kind == "unpublished" and "published " in what] == []
    tab.check()


def test_a_dead_letter_page_has_no_save_and_no_delete_and_discard_is_the_action(tab: Watched):
    message = Message("orders", "1-1", {b"type": b"orders.OrderPlaced", b"event": b"not JSON"})
    letter = deadletter_record(group="inventory", message=message, error="not JSON", traceback="", attempts=1)
    page = sign_in_to_admin(tab, f"/admin/eventbus/deadletter/{letter.pk}/change/")

    expect(page.locator(".field-error")).to_contain_text("not JSON")
    assert page.locator('[name="_save"], [name="_continue"], [name="_addanother"]').count() == 0
    assert page.get_by_role("link", name="Delete").count() == 0
    page.goto("/admin/eventbus/deadletter/")
    page.locator(f'input[name="_selected_action"][value="{letter.pk}"]').check()
    page.select_option('select[name="action"]', "discard")
    page.get_by_role("button", name="Go").click()

    expect(page.locator(".messagelist")).to_contain_text("Discarded 1 dead letter(s).")
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetter.Status.DISCARDED
    options = page.locator('select[name="action"] option').evaluate_all("options => options.map((o) => o.value)")
    assert "delete_selected" not in options
    tab.check()


def long_dead_letters() -> None:
    """Dead letters with the longest names and errors the console has to lay out."""
    for n, group in enumerate(("inventory", "notifications")):
        message = Message("orders", f"1-{n}", {b"type": b"orders.OrderPlaced", b"event": b"{}"})
        error = f"ValidationError: payload failed validation: {'items[0].quantity must be at least 1; ' * 6}"
        deadletter_record(group=group, message=message, error=error, traceback="", attempts=5)


def test_the_operations_page_fits_a_1280_px_window(tab: Watched, transport):
    long_dead_letters()
    record_fifteen_minutes(transport)
    tab.page.set_viewport_size(WINDOW)

    beats = the_pipelines_processes()
    for beat in beats:  # named as processes name themselves by default: host and pid
        beat.host = "shop-web-7f9c2d"
        beat.name = f"{'relay-' if beat.role == 'relay' else ''}{beat.host}-{beat.pid}"

    with beating(transport, beats):
        page = open_console(tab)
        expect(page.locator("#ops-relay .state")).to_have_text("alive")
        expect(page.locator(".ops-group tbody tr", has_text="shop-web-7f9c2d-4202")).to_have_count(1)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        # Every column of the consumers' tables is in its card, not behind a sideways scroll.
        clipped = page.evaluate(
            """() => [...document.querySelectorAll(".ops-consumers")]
                 .filter((box) => box.scrollWidth > box.clientWidth)
                 .map((box) => box.closest(".ops-group").dataset.group)"""
        )
        # For the message: what reaches past the window's edge (text an ellipsis clips included).
        wide = page.evaluate(
            """() => [...document.querySelectorAll("#ops-console *")]
                 .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
                 .slice(0, 5).map((e) => `${e.tagName}.${e.className?.baseVal ?? e.className}`)"""
        )

    assert widths[0] <= WINDOW["width"], f"scrolls sideways: {widths}, past the edge: {wide}"
    assert clipped == [], "consumer tables wider than their cards"
    tab.check()


def test_the_operations_page_says_the_relay_is_a_backstop_idle_with_nothing_waiting(tab: Watched, transport):
    beats = [b for b in the_pipelines_processes() if b.role == "relay"]
    for beat in beats:
        beat.published, beat.last_batch_at = 0, None

    with beating(transport, beats):
        page = open_console(tab)
        relay = page.locator("#ops-relay")
        expect(relay.locator(".state")).to_have_text("alive")
        expect(relay.locator(".ops-relay-work")).to_have_text("backstop: idle, nothing waiting")
        expect(relay.locator(".ops-relay-role")).to_contain_text("the relay publishes only what that missed")
        expect(relay.locator("tbody td").nth(4)).to_have_text("none needed")
        assert "never" not in relay.inner_text()
    tab.check()


def test_latency_percentiles_are_lines_over_time_even_for_a_few_orders_a_minute(tab: Watched, transport):
    """Two orders a minute for five minutes: each 10-second bucket has one or none, and each
    point of the chart is over the trailing minute, so p50 and p99 are one line each, not dots.
    (Where within its histogram bucket a point sits: tests/dashboard/test_console_state.py.)"""
    recorder = timeseries.Recorder()
    now = time.time()
    for seconds_ago in range(30, 330, 30):
        recorder.observe("stage:confirmed", 0.004 + seconds_ago / 100_000, at=now - seconds_ago)
    recorder.flush(transport)

    page = open_console(tab)
    stage = page.locator('.ops-stage[data-stage="confirmed"]')
    expect(stage.locator(".count")).to_have_text("10")
    for line in ("p50-line", "p99-line"):
        d = stage.locator(f"svg path.{line}").get_attribute("d")
        assert d.count("M") == 1, f"{line} is broken into {d.count('M')} runs: {d}"
        assert d.count("L") >= 28, f"{line} has {d.count('L')} segments: {d}"
    tab.check()
