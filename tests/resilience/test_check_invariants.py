"""`manage.py check_invariants`: exit 0 on a consistent system, exit 1 with a report naming
what is broken."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from eventbus.models import OutboxEvent
from inventory.models import Product
from orders.models import Order
from orders.services import order_place
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def check_invariants(*args: str) -> tuple[int, str]:
    """The exit status and everything printed."""
    out, err = StringIO(), StringIO()
    try:
        call_command("check_invariants", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


@pytest.fixture
def settled_order(pump) -> Order:
    product = ProductFactory(stock=5)
    placed = order_place(customer=UserFactory(), items=[(product.pk, 2)])
    pump()
    order = Order.objects.get(pk=placed.pk)
    assert order.status == Order.Status.CONFIRMED
    return order


def test_a_consistent_system_passes_every_check(settled_order):
    status, report = check_invariants()

    assert status == 0
    assert report.strip().endswith("all invariants hold")
    assert "FAIL" not in report


def test_tampered_stock_fails_the_check_naming_the_product(settled_order):
    sku = Product.objects.get().sku
    Product.objects.update(stock=F("stock") + 4)  # stock that came from nowhere

    status, report = check_invariants()

    assert status == 1
    assert "FAIL stock + active reservations = stock ever added" in report
    assert f"{sku}: stock 7 + reserved 2 != 5 added" in report
    assert "1 invariant(s) broken" in report


def test_a_rejected_order_still_holding_a_reservation_fails_the_check(settled_order):
    Order.objects.filter(pk=settled_order.pk).update(status=Order.Status.REJECTED)

    status, report = check_invariants()

    assert status == 1
    assert f"rejected order {settled_order.pk} still holds" in report


@pytest.fixture
def unpublished(settings):
    """Events stay in the outbox: nothing publishes them on commit, and no relay runs."""
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": False}


@pytest.mark.usefixtures("unpublished")
def test_an_outbox_event_unpublished_for_longer_than_the_threshold_fails_the_check():
    ProductFactory(stock=5)  # records a ProductChanged event
    OutboxEvent.objects.update(created_at=timezone.now() - dt.timedelta(seconds=120))

    status, report = check_invariants("--outbox-max-age", "60")

    assert status == 1
    assert "FAIL no outbox event unpublished for more than 60 s" in report
    assert "1 event(s) waiting; oldest inventory.ProductChanged" in report


@pytest.mark.usefixtures("unpublished")
def test_an_outbox_event_younger_than_the_threshold_is_not_reported():
    ProductFactory(stock=5)  # records a ProductChanged event

    status, report = check_invariants("--outbox-max-age", "60")

    assert status == 0
    assert "ok   no outbox event unpublished for more than 60 s" in report
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1
