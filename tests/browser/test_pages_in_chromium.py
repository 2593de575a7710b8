"""What a person does in a browser, in real Chromium under the enforced Content-Security-Policy:
a customer finds the docs from the API root, places an order from the browsable API and cancels
it; staff open the admin and the operations page. Each test fails on any CSP violation, console
error or page error (tests/browser/conftest.py)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from orders.models import Order
from orders.services import order_place
from tests.browser.watch import Watched, sign_in
from tests.factories import ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_customer_finds_the_docs_from_the_api_root_and_swagger_ui_shows_the_operations(tab: Watched):
    customer = UserFactory()
    page = tab.page

    sign_in(tab, customer, at="/api-auth/login/?next=/api/")
    expect(page.locator("h1")).to_have_text("eventshop API")
    page.locator(".content-main").get_by_role("link", name="API documentation (Swagger UI)").click()

    expect(page).to_have_url(re.compile(r"/api/docs/$"))
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/orders/{id}/cancel/")).to_be_visible()
    assert operations.count() >= 10
    tab.check()


def test_customer_places_an_order_from_the_browsable_api_and_cancels_it(tab: Watched):
    customer = UserFactory()
    ProductFactory(sku="A-KEYBOARD")
    ProductFactory(sku="B-MOUSE")
    page = tab.page
    sign_in(tab, customer, at="/api-auth/login/?next=/api/orders/")

    # The raw-data form as the page offers it, posted on the first try.
    page.locator("#post-generic-content-form").get_by_role("button", name="POST").click()
    expect(page.locator(".response-info")).to_contain_text("HTTP 201 Created")
    order = Order.objects.get(customer=customer)
    assert [item.sku for item in order.items.order_by("sku")] == ["A-KEYBOARD", "B-MOUSE"]

    page.locator("#open-order").click()
    expect(page).to_have_url(re.compile(rf"/api/orders/{order.pk}/$"))
    page.get_by_role("button", name="Cancel order").click()

    expect(page.locator(".response-info")).to_contain_text("HTTP 200 OK")
    expect(page.locator(".response-info")).to_contain_text('"status": "cancelled"')
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    tab.check()


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""

    def luminance(colour: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted([luminance(foreground), luminance(background)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_staff_sign_in_to_the_admin_and_open_the_operations_page_the_admin_index_and_a_user(tab: Watched):
    staff = StaffFactory(is_superuser=True)
    page = tab.page

    sign_in(tab, staff, at="/admin/login/?next=/ops/")
    expect(page.locator("h1")).to_have_text("Operations")
    expect(page.locator("#site-name")).to_have_text("eventshop administration")
    page.get_by_role("button", name="Check invariants now").click()
    verdicts = page.locator("#ops-invariants td.good")
    expect(verdicts.first).to_have_text("ok")
    colour = verdicts.first.evaluate("cell => getComputedStyle(cell).color")
    background = page.locator("body").evaluate("body => getComputedStyle(body).backgroundColor")
    page.locator(".breadcrumbs").get_by_role("link", name="Admin").click()

    expect(page.locator("h1")).to_have_text("Site administration")
    # The admin's most scripted page: a user, whose two-box pickers (groups, permissions) are built
    # by its SelectFilter2.js.
    page.get_by_role("link", name="Users").first.click()
    page.get_by_role("link", name=staff.get_username()).click()
    expect(page.locator("#id_user_permissions_input")).to_be_visible()
    assert contrast(colour, background) >= 4.5, f"'ok' in {colour} on {background}"
    tab.check()


def test_customer_opens_an_order_from_the_order_list_and_cancels_it(tab: Watched):
    """From the list to the order's page by its link (its `url`), no URL typed by hand."""
    customer = UserFactory()
    order = order_place(customer=customer, items=[(ProductFactory().pk, 1)])
    page = tab.page
    sign_in(tab, customer, at="/api-auth/login/?next=/api/orders/")

    page.locator(f'#order-links a[href$="/api/orders/{order.id}/"]').click()

    expect(page).to_have_url(re.compile(rf"/api/orders/{order.id}/$"))
    page.get_by_role("button", name="Cancel order").click()
    expect(page.locator(".response-info")).to_contain_text('"status": "cancelled"')
    assert Order.objects.get(pk=order.id).status == "cancelled"
    tab.check()
