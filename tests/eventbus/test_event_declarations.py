"""Events declare only their fields: their app's family base gives the stream, the aggregate
type and the prefix of the type name, and the version is 1 unless said otherwise. However
they are declared, the published wire names and the encoding never change."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest

from eventbus.messages.codec import encode
from eventbus.messages.events import Envelope, event_classes
from orders.events import OrderEvent, OrderLine, OrderPlaced


def test_the_published_events_keep_their_wire_names():
    published = {
        (cls.type, cls.version, cls.stream, cls.aggregate_type)
        for cls in event_classes()
        if cls.__module__ in ("orders.events", "inventory.events")
    }

    assert published == {
        ("orders.OrderPlaced", 1, "orders", "order"),
        ("orders.OrderConfirmed", 1, "orders", "order"),
        ("orders.OrderRejected", 1, "orders", "order"),
        ("orders.OrderCancelled", 1, "orders", "order"),
        ("inventory.InventoryReserved", 1, "inventory", "reservation"),
        ("inventory.InventoryReservationFailed", 1, "inventory", "reservation"),
        ("inventory.InventoryReleased", 1, "inventory", "reservation"),
        ("inventory.ProductChanged", 1, "inventory", "product"),
    }


def test_an_event_encodes_exactly_as_before_the_event_families():
    event = OrderPlaced(
        order_id=uuid.UUID("0b6f3c1e-9d7a-4c39-8f0e-2a4d1c5b7e90"),
        customer_id=7,
        items=(OrderLine(product_id=1, quantity=2),),
        total=Decimal("47.50"),
    )
    envelope = Envelope(
        event_id=uuid.UUID("5d0c2a4e-0f41-4b7a-9c2e-6a1f0e9b3c11"),
        type=event.type,
        version=event.version,
        occurred_at=dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC),
        aggregate_type=event.aggregate_type,
        aggregate_id=str(event.order_id),
        correlation_id=uuid.UUID("5d0c2a4e-0f41-4b7a-9c2e-6a1f0e9b3c11"),
        causation_id=None,
        payload=event,
    )

    assert encode(envelope) == (
        '{"event_id":"5d0c2a4e-0f41-4b7a-9c2e-6a1f0e9b3c11","type":"orders.OrderPlaced","version":1,'
        '"occurred_at":"2026-11-30T12:00:00+00:00","aggregate_type":"order",'
        '"aggregate_id":"0b6f3c1e-9d7a-4c39-8f0e-2a4d1c5b7e90",'
        '"correlation_id":"5d0c2a4e-0f41-4b7a-9c2e-6a1f0e9b3c11","causation_id":null,'
        '"payload":{"order_id":"0b6f3c1e-9d7a-4c39-8f0e-2a4d1c5b7e90","customer_id":7,'
        '"items":[{"product_id":1,"quantity":2}],"total":"47.50"}}'
    )


def test_an_event_declaring_its_version_as_a_class_attribute_is_refused_with_how_to_declare_it():
    with pytest.raises(TypeError, match=r"give version as class keywords, e\.g\. class X\(Base, version=2\)"):

        @dataclass(frozen=True)
        class Stated(OrderEvent):
            version = 2  # type: ignore[misc]
            order_id: uuid.UUID


def test_an_event_is_refused_when_another_class_holds_its_type_and_version(event_registry):
    with pytest.raises(TypeError, match=r"\('orders.OrderPlaced', 1\) is registered twice"):

        class OrderPlaced(OrderEvent):
            pass
