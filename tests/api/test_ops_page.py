"""The operations page (/ops/): the admin's header, user bar and breadcrumbs around the console,
the state it first draws, and the way to it from the admin's index. What its script does with
that state is proven in real Chromium (tests/browser/test_console_in_chromium.py); the state's
numbers in tests/dashboard/test_console_state.py."""

from __future__ import annotations

import json
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


def first_state(page: str) -> dict:
    """The state the page carries for its script to draw before the first poll."""
    data = re.search(r'<script id="ops-state" type="application/json">(.*?)</script>', page, re.S)
    assert data, "the page carries no state"
    return json.loads(data.group(1))


def test_staff_see_every_order_status_counted_with_zero_as_0(staff_client, customer):
    product = ProductFactory()
    order_place(customer=customer, items=[(product.pk, 1)])
    order_cancel(order_id=order_place(customer=customer, items=[(product.pk, 1)]).id)

    response = staff_client.get("/ops/")

    assert response.status_code == 200
    counts = {row["label"]: row["count"] for row in first_state(response.content.decode())["orders"]["by_status"]}
    assert counts == {"Pending": 1, "Confirmed": 0, "Rejected": 0, "Cancelled": 1}


def test_operations_page_wears_the_admins_header_user_bar_and_breadcrumbs(staff_client):
    page = staff_client.get("/ops/").content.decode()

    assert re.search(r'<div id="site-name"><a href="/admin/">eventshop administration</a>', page)
    assert re.search(r'<div id="user-tools">.*<strong>operator</strong>', page, re.S)
    assert '<form id="logout-form" method="post" action="/admin/logout/">' in page
    assert re.search(r'<div class="breadcrumbs"><a href="/admin/">Admin</a> &rsaquo; Operations</div>', page)


def test_the_page_loads_its_script_and_styles_from_files(staff_client):
    page = staff_client.get("/ops/").content.decode()

    scripts = re.findall(r'<script src="/static/dashboard/(\w+\.js)" defer></script>', page)
    assert scripts == ["dom.js", "format.js", "charts.js", "console.js"], "helpers first, in this order"
    assert re.search(r'<link rel="stylesheet" href="/static/dashboard/console\.css">', page)
    assert {staff_client.get(f"/static/dashboard/{name}").status_code for name in scripts} == {200}


def test_the_admin_index_links_to_the_operations_console(staff_client):
    page = staff_client.get("/admin/").content.decode()

    link = r'<caption>Operations</caption>\s*<tr><th scope="row"><a href="/ops/">Operations console</a>'
    assert re.search(link, page)


def test_visitors_who_are_not_signed_in_are_sent_to_the_admins_sign_in(client):
    response = client.get("/ops/")

    assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/ops/")


def test_the_page_opens_while_redis_is_down_and_carries_the_problem(staff_client, redis_down):
    response = staff_client.get("/ops/")

    assert response.status_code == 200
    assert any(p.startswith("Redis is unreachable") for p in first_state(response.content.decode())["problems"])


def test_invariants_checked_from_the_operations_page_are_listed_as_ok(staff_client, customer):
    order_place(customer=customer, items=[(ProductFactory().pk, 1)])
    page = staff_client.get("/ops/").content.decode()
    invariants_url = re.search(r'data-invariants-url="([^"]+)"', page).group(1)

    checks = staff_client.get(invariants_url).json()["checks"]

    assert checks
    assert {check["ok"] for check in checks} == {True}
