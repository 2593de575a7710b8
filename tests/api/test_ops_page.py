"""The operations page (/ops/): what staff read there, in the admin's look."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from orders.services import order_cancel, order_place
from tests.factories import ProductFactory, StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(StaffFactory(username="operator"))
    return client


def order_counts(page: str) -> dict[str, tuple[str, str]]:
    """The Orders table: status -> (all time, last hour), as the page prints them."""
    rows = re.findall(r'<tr><td>(\w+)</td><td class="num">([^<]*)</td><td class="num">([^<]*)</td></tr>', page)
    return {status: (all_time, last_hour) for status, all_time, last_hour in rows}


def test_staff_see_every_order_status_counted_with_zero_as_0(staff_client, customer):
    product = ProductFactory()
    order_place(customer=customer, items=[(product.pk, 1)])
    cancelled = order_place(customer=customer, items=[(product.pk, 1)])
    order_cancel(order_id=cancelled.pk)

    response = staff_client.get("/ops/")

    assert response.status_code == 200
    assert order_counts(response.content.decode()) == {
        "Pending": ("1", "1"),
        "Confirmed": ("0", "0"),
        "Rejected": ("0", "0"),
        "Cancelled": ("1", "1"),
    }


def test_operations_page_wears_the_admins_header_user_bar_and_breadcrumbs(staff_client):
    page = staff_client.get("/ops/").content.decode()

    assert re.search(r'<div id="site-name"><a href="/admin/">eventshop administration</a>', page)
    assert re.search(r'<div id="user-tools">.*<strong>operator</strong>', page, re.S)
    assert '<form id="logout-form" method="post" action="/admin/logout/">' in page
    assert re.search(r'<div class="breadcrumbs"><a href="/admin/">Admin</a> &rsaquo; Operations</div>', page)


def test_invariants_checked_from_the_operations_page_are_listed_as_ok(staff_client, customer):
    order_place(customer=customer, items=[(ProductFactory().pk, 1)])

    page = staff_client.get("/ops/?check=1").content.decode()

    verdicts = re.findall(r'<td class="(good|bad)">(ok|FAIL)</td>', page)
    assert verdicts
    assert set(verdicts) == {("good", "ok")}


def test_the_admin_index_links_to_the_operations_console(staff_client):
    page = staff_client.get("/admin/").content.decode()

    link = r'<caption>Operations</caption>\s*<tr><th scope="row"><a href="/ops/">Operations console</a>'
    assert re.search(link, page)
