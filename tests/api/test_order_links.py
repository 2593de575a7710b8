"""Every representation of an order leads to its page: the order list, as JSON and as the
browsable API's page, links each order to its detail URL (where its Cancel button is), so no one
types an order's URL by hand."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
from rest_framework.test import APIClient

from orders.services import order_place
from tests.clients import token_client
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orders(customer) -> list[str]:
    product = ProductFactory()
    return [str(order_place(customer=customer, items=[(product.pk, 1)]).id) for _ in range(2)]


def test_the_json_order_list_gives_each_order_its_detail_url(customer, two_orders):
    body = token_client(customer).get("/api/orders/").json()

    # Absolute (as DRF's hyperlinked fields give it) or from the root: either leads there.
    urls = {o["id"]: urljoin("http://testserver/api/orders/", o.get("url") or "") for o in body["results"]}

    assert urls == {order_id: f"http://testserver/api/orders/{order_id}/" for order_id in two_orders}


def test_the_browsable_order_list_links_each_order_to_its_page(customer, two_orders):
    client = APIClient()
    client.force_login(customer)

    page = client.get("/api/orders/", HTTP_ACCEPT="text/html").content.decode()

    for order_id in two_orders:
        link = re.compile(rf'<a [^>]*href="(http://testserver)?/api/orders/{order_id}/"')
        assert link.search(page), f"no link to order {order_id}"
