"""Inventory services: an order's stock is reserved all or nothing, and released once."""

from __future__ import annotations

import uuid

import pytest

from eventbus.messages.codec import decode
from eventbus.models import OutboxEvent
from inventory.events import InventoryReleased, InventoryReservationFailed, InventoryReserved, ShortLine
from inventory.models import Product, Reservation
from inventory.services import stock_release, stock_reserve
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def stock(product: Product) -> int:
    return Product.objects.get(pk=product.pk).stock


def published(event_class, order_id: uuid.UUID) -> list:
    rows = OutboxEvent.objects.filter(event_type=event_class.type, aggregate_id=str(order_id)).order_by("id")
    return [decode(r.body).payload for r in rows]


def test_reservation_short_on_its_second_line_leaves_the_first_line_stock_untouched():
    plenty = ProductFactory(stock=10)
    scarce = ProductFactory(stock=1)
    order_id = uuid.uuid4()

    assert stock_reserve(order_id=order_id, lines=[(plenty.pk, 4), (scarce.pk, 2)]) is False

    assert stock(plenty) == 10
    assert stock(scarce) == 1
    assert not Reservation.objects.filter(order_id=order_id).exists()
    assert published(InventoryReserved, order_id) == []


def test_reservation_in_stock_takes_every_line_and_publishes_inventory_reserved():
    lamp = ProductFactory(stock=10)
    cable = ProductFactory(stock=3)
    order_id = uuid.uuid4()

    assert stock_reserve(order_id=order_id, lines=[(lamp.pk, 4), (cable.pk, 3)]) is True

    assert (stock(lamp), stock(cable)) == (6, 0)
    assert sorted(Reservation.objects.filter(order_id=order_id).values_list("product_id", "quantity", "status")) == [
        (lamp.pk, 4, "reserved"),
        (cable.pk, 3, "reserved"),
    ]
    assert len(published(InventoryReserved, order_id)) == 1


def test_failed_reservation_names_every_short_line_and_no_line_in_stock():
    lamp = ProductFactory(stock=1)
    cable = ProductFactory(stock=0)
    plenty = ProductFactory(stock=100)
    order_id = uuid.uuid4()

    stock_reserve(order_id=order_id, lines=[(lamp.pk, 2), (plenty.pk, 1), (cable.pk, 1)])

    (failed,) = published(InventoryReservationFailed, order_id)
    assert f"product {lamp.pk}: 2 requested, 1 in stock" in failed.reason
    assert f"product {cable.pk}: 1 requested, 0 in stock" in failed.reason
    assert f"product {plenty.pk}" not in failed.reason
    assert set(failed.short_lines) == {
        ShortLine(product_id=lamp.pk, requested=2, available=1),
        ShortLine(product_id=cable.pk, requested=1, available=0),
    }


def test_inactive_product_counts_as_unavailable_whatever_its_stock():
    retired = ProductFactory(stock=50, active=False)
    order_id = uuid.uuid4()

    assert stock_reserve(order_id=order_id, lines=[(retired.pk, 1)]) is False

    assert stock(retired) == 50
    (failed,) = published(InventoryReservationFailed, order_id)
    assert f"product {retired.pk} is not available" in failed.reason
    assert failed.short_lines == (ShortLine(product_id=retired.pk, requested=1, available=0),)


def test_releasing_a_cancelled_order_twice_restores_its_stock_once():
    product = ProductFactory(stock=5)
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[(product.pk, 3)])
    assert stock(product) == 2

    assert stock_release(order_id=order_id, lines=[(product.pk, 3)]) == 1
    assert stock_release(order_id=order_id, lines=[(product.pk, 3)]) == 0

    assert stock(product) == 5
    assert Reservation.objects.get(order_id=order_id).status == "released"
    assert len(published(InventoryReleased, order_id)) == 1


def test_cancellation_processed_before_its_placement_leaves_the_late_placement_nothing_to_reserve():
    product = ProductFactory(stock=5)
    order_id = uuid.uuid4()

    assert stock_release(order_id=order_id, lines=[(product.pk, 2)]) == 0  # leaves a tombstone
    reserved = stock_reserve(order_id=order_id, lines=[(product.pk, 2)])

    assert reserved is False
    assert stock(product) == 5
    assert list(Reservation.objects.filter(order_id=order_id).values_list("status", flat=True)) == ["released"]
    assert published(InventoryReserved, order_id) == []
    assert published(InventoryReleased, order_id) == [], "nothing was ever held, so nothing was released"
