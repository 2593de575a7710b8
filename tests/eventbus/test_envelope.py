"""The wire envelope: every published event survives encode/decode unchanged, and decode refuses
anything else with a permanent error that says why (such a message goes straight to dead letters)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from eventbus.messages.codec import decode, encode
from eventbus.messages.events import (
    Envelope,
    Event,
    InvalidEvent,
    MalformedMessage,
    NewerEventVersion,
    PermanentError,
    UnknownEventType,
    event_classes,
)
from inventory.events import (
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    ProductChanged,
    ReservedLine,
    ShortLine,
)
from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderRejected

ORDER_ID = uuid.UUID("0b6f3c1e-9d7a-4c39-8f0e-2a4d1c5b7e90")

EXAMPLES: list[Event] = [
    OrderPlaced(
        order_id=ORDER_ID,
        customer_id=7,
        items=(OrderLine(product_id=1, quantity=2), OrderLine(product_id=3, quantity=1)),
        total=Decimal("47.50"),
    ),
    OrderConfirmed(order_id=ORDER_ID, customer_id=7, total=Decimal("47.50")),
    OrderRejected(order_id=ORDER_ID, customer_id=7, reason="insufficient stock: product 3: 5 requested, 2 in stock"),
    OrderCancelled(
        order_id=ORDER_ID, customer_id=7, items=(OrderLine(product_id=1, quantity=2),), previous_status="confirmed"
    ),
    InventoryReserved(order_id=ORDER_ID, lines=(ReservedLine(product_id=1, quantity=2),)),
    InventoryReservationFailed(
        order_id=ORDER_ID,
        reason="insufficient stock: product 3: 5 requested, 2 in stock; product 4 is not available",
        short_lines=(
            ShortLine(product_id=3, requested=5, available=2),
            ShortLine(product_id=4, requested=1, available=0),
        ),
    ),
    InventoryReleased(order_id=ORDER_ID, lines=(ReservedLine(product_id=1, quantity=2),)),
    ProductChanged(product_id=1, sku="SKU-00001", name="Lamp", price=Decimal("19.99"), active=False, revision=3),
]


def wire(**changes: object) -> dict:
    """A valid OrderPlaced envelope as JSON data, with some fields changed or (None) removed."""
    data = json.loads(encode(Envelope.new(EXAMPLES[0], aggregate_id=ORDER_ID)))
    for name, value in changes.items():
        if value is None:
            del data[name]
        else:
            data[name] = value
    return data


def test_every_published_event_class_has_a_round_trip_example():
    published = {cls for cls in event_classes() if cls.__module__ in ("orders.events", "inventory.events")}
    assert {type(event) for event in EXAMPLES} == published


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_decoding_an_encoded_event_gives_back_the_same_envelope(event):
    cause = Envelope.new(EXAMPLES[0], aggregate_id=ORDER_ID)
    envelope = Envelope.new(event, aggregate_id=ORDER_ID, caused_by=cause)

    decoded = decode(encode(envelope))

    assert decoded == envelope
    assert type(decoded.payload) is type(event)
    assert decoded.causation_id == cause.event_id
    assert decoded.correlation_id == cause.correlation_id


@pytest.mark.parametrize("error", [MalformedMessage, UnknownEventType, InvalidEvent])
def test_every_decode_error_is_a_permanent_error(error):
    assert issubclass(error, PermanentError)


@pytest.mark.parametrize("raw", [b"not json {", b"\xff\xfe\x00", "", "[1, 2]", '"orders.OrderPlaced"'])
def test_decode_refuses_a_message_that_is_not_a_json_object_as_malformed(raw):
    with pytest.raises(MalformedMessage):
        decode(raw)


@pytest.mark.parametrize(
    "field", ["event_id", "type", "version", "occurred_at", "aggregate_type", "aggregate_id", "payload"]
)
def test_decode_refuses_an_envelope_lacking_a_required_field_as_malformed(field):
    with pytest.raises(MalformedMessage, match=field):
        decode(json.dumps(wire(**{field: None})))


def test_decode_refuses_a_version_that_is_not_an_integer_as_malformed():
    with pytest.raises(MalformedMessage, match="version"):
        decode(json.dumps(wire(version="1")))


def test_decode_refuses_an_unknown_event_type_as_unknown():
    with pytest.raises(UnknownEventType, match=r"orders\.OrderShipped"):
        decode(json.dumps(wire(type="orders.OrderShipped")))


def test_decode_refuses_an_older_version_of_a_known_type_that_no_upcaster_reaches_as_unknown():
    with pytest.raises(UnknownEventType, match="version 0: no upcaster from version 0"):
        decode(json.dumps(wire(version=0)))


def test_decode_reports_a_newer_version_of_a_known_type_as_one_to_wait_for_not_as_permanent():
    data = wire(version=2)

    with pytest.raises(
        NewerEventVersion, match=r"orders\.OrderPlaced version 2 is newer than .* \(version 1\)"
    ) as raised:
        decode(json.dumps(data))

    assert not isinstance(raised.value, PermanentError)
    assert (raised.value.type, raised.value.event_id) == ("orders.OrderPlaced", uuid.UUID(data["event_id"]))


@pytest.mark.parametrize(
    ("change", "path"),
    [
        pytest.param({"items": [{"product_id": 1, "quantity": "2"}]}, r"items\[0\]\.quantity", id="quantity-string"),
        pytest.param({"items": [{"product_id": 1, "quantity": True}]}, r"items\[0\]\.quantity", id="quantity-bool"),
        pytest.param({"items": [{"product_id": 1}]}, r"items\[0\]\.quantity: required", id="quantity-missing"),
        pytest.param({"items": {"product_id": 1, "quantity": 2}}, r"items: expected a list", id="items-object"),
        pytest.param({"total": 47.5}, r"payload\.total", id="total-float"),
        pytest.param({"total": "forty"}, r"payload\.total", id="total-text"),
        pytest.param({"order_id": "not-a-uuid"}, r"payload\.order_id", id="order-id-text"),
        pytest.param({"customer_id": None}, r"payload\.customer_id", id="customer-id-null"),
    ],
)
def test_decode_refuses_a_payload_of_the_wrong_shape_as_invalid_naming_the_field(change, path):
    payload = {**wire()["payload"], **change}

    with pytest.raises(InvalidEvent, match=path):
        decode(json.dumps(wire(payload=payload)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("event_id", "1234", id="event-id-text"),
        pytest.param("occurred_at", "yesterday", id="occurred-at-text"),
        pytest.param("occurred_at", dt.datetime(2024, 5, 1, 12, 0).isoformat(), id="occurred-at-without-zone"),
        pytest.param("aggregate_id", 42, id="aggregate-id-number"),
        pytest.param("causation_id", "not-a-uuid", id="causation-id-text"),
    ],
)
def test_decode_refuses_an_envelope_field_of_the_wrong_type_as_invalid(field, value):
    with pytest.raises(InvalidEvent, match=field):
        decode(json.dumps(wire(**{field: value})))


@pytest.mark.parametrize("total", ["NaN", "Infinity", "-Infinity"])
def test_decode_refuses_a_decimal_that_is_not_finite(total):
    with pytest.raises(InvalidEvent, match=r"payload\.total"):
        decode(json.dumps(wire(payload={**wire()["payload"], "total": total})))


@pytest.mark.parametrize("quantity", [0, -2])
def test_decode_refuses_an_order_line_without_a_positive_quantity(quantity):
    items = [{"product_id": 1, "quantity": quantity}]
    with pytest.raises(InvalidEvent, match=r"payload\.items\[0\]"):
        decode(json.dumps(wire(payload={**wire()["payload"], "items": items})))
