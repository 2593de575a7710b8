"""Events change between releases, and a rolling deploy runs both releases at once: a newer
producer beside an older consumer, and the reverse. Orders keep flowing and nothing is
dead-lettered. An older version is read through upcasters; a newer one waits (retried, not
dead-lettered) until its consumer is upgraded, up to EVENTBUS["NEWER_VERSION_WAIT_S"].

"The next release" is simulated in-process: it defines OrderPlaced version 2 (customers may ask
for gift wrapping) and the upcaster that reads version 1 into it. The consumers are the real
Consumer on the real stream and database; `event_registry` makes this process forget the next
release again (it then reads events as the running release does).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from eventbus.messages.codec import decode, encode
from eventbus.messages.events import Envelope, InvalidEvent, UnknownEventType
from eventbus.messages.upcasting import upcaster
from eventbus.models import DeadLetter, OutboxEvent
from eventbus.store import outbox
from inventory.models import Product, Reservation
from orders.events import OrderEvent, OrderLine, OrderPlaced
from orders.models import Order
from orders.services import order_place
from tests.factories import ProductFactory
from tests.resilience.flaky import ScriptedEvent, script
from tests.resilience.streams import pending, retry_schedule

pytestmark = pytest.mark.django_db(transaction=True)

MAX_ATTEMPTS = 2
RETRY_CAP_S = 0.05


@pytest.fixture(autouse=True)
def quick_retries(settings: Any, key_prefix: str) -> None:
    settings.EVENTBUS = {
        **settings.EVENTBUS,
        "RETRY": {"default": {"base_s": 0.01, "cap_s": RETRY_CAP_S, "max_attempts": MAX_ATTEMPTS}},
    }


def next_release() -> type[OrderEvent]:
    """Define what the next release defines: OrderPlaced version 2 with a new required field,
    and the upcaster that reads version 1 into it (nobody asked for gift wrapping then)."""

    @dataclass(frozen=True)
    class OrderPlaced(OrderEvent, version=2):
        order_id: uuid.UUID
        customer_id: int
        items: tuple[OrderLine, ...]
        total: Decimal
        gift_wrapped: bool

    @upcaster("orders.OrderPlaced", from_version=1)
    def nobody_asked_for_gift_wrapping(payload: dict[str, Any]) -> dict[str, Any]:
        upcast.append(payload["order_id"])
        return {**payload, "gift_wrapped": False}

    return OrderPlaced


upcast: list[str] = []  # order ids the upcaster above was given


@pytest.fixture(autouse=True)
def no_upcasts_yet() -> None:
    upcast.clear()


def place_as_the_next_release(placed_v2: type[OrderEvent], customer: Any, product: Any, quantity: int) -> uuid.UUID:
    """Place an order as a web process of the next release does: the same order, its
    OrderPlaced written at version 2 (this process's version 1 row is replaced in the same
    transaction, so only version 2 is ever published)."""
    with transaction.atomic():
        order = order_place(customer=customer, items=[(product.pk, quantity)])
        OutboxEvent.objects.filter(aggregate_id=str(order.id), event_type=OrderPlaced.type).delete()
        lines = tuple(OrderLine(product_id=i.product_id, quantity=i.quantity) for i in order.items)
        event = placed_v2(order_id=order.id, customer_id=customer.pk, items=lines, total=order.total, gift_wrapped=True)
        outbox.record(event, aggregate_id=order.id)
    return order.id


def status(order_id: uuid.UUID) -> str:
    return Order.objects.get(pk=order_id).status


def times_delivered(transport: Any, group: str = "inventory") -> dict[str, int]:
    rows = transport.client.xpending_range(transport.key("orders"), group, min="-", max="+", count=100)
    return {r["message_id"].decode(): r["times_delivered"] for r in rows}


def wait_for_due_retries() -> None:
    time.sleep(RETRY_CAP_S + 0.02)


@pytest.mark.usefixtures("relay_only")
def test_a_newer_producer_beside_an_older_consumer_waits_for_the_upgrade_and_nothing_is_dead_lettered(
    customer, transport, event_registry, pump
):
    lamp = ProductFactory(stock=10)
    placed_v2 = next_release()
    by_next_release = place_as_the_next_release(placed_v2, customer, lamp, 2)
    by_this_release = order_place(customer=customer, items=[(lamp.pk, 1)]).id
    event_registry()  # the consumers still run this release: they know OrderPlaced version 1

    pump()
    for _ in range(MAX_ATTEMPTS + 2):  # more deliveries than a failing message may have
        wait_for_due_retries()
        pump()

    assert status(by_this_release) == "confirmed", "orders of this release flow meanwhile"
    assert status(by_next_release) == "pending"
    assert not Reservation.objects.filter(order_id=by_next_release).exists()
    ((waiting_id, deliveries),) = times_delivered(transport).items()
    assert deliveries > MAX_ATTEMPTS
    assert list(retry_schedule(transport)) == [f"orders|{waiting_id}"]
    assert not DeadLetter.objects.exists()

    next_release()  # the consumers are upgraded
    wait_for_due_retries()
    pump()

    assert status(by_next_release) == "confirmed"
    assert Reservation.objects.get(order_id=by_next_release).quantity == 2
    assert pending(transport) == {}
    assert retry_schedule(transport) == {}
    assert not DeadLetter.objects.exists()


def test_an_older_producer_beside_a_newer_consumer_is_read_through_the_upcaster(customer, event_registry, pump):
    lamp = ProductFactory(stock=10)
    next_release()  # the consumers run the next release; this web process still writes version 1

    order = order_place(customer=customer, items=[(lamp.pk, 3)])
    pump()

    assert status(order.id) == "confirmed"
    assert Reservation.objects.get(order_id=order.id).quantity == 3
    assert str(order.id) in upcast
    assert not DeadLetter.objects.exists()


@pytest.mark.usefixtures("relay_only")
def test_a_group_that_does_not_handle_a_newer_event_skips_it_without_waiting(
    customer, transport, event_registry, relay, consume
):
    placed_v2 = next_release()
    place_as_the_next_release(placed_v2, customer, ProductFactory(stock=10), 1)
    event_registry()
    relay()

    stats = consume("notifications")

    assert (stats.skipped, stats.waiting) == (1, 0)
    assert pending(transport, group="notifications") == {}
    assert retry_schedule(transport, group="notifications") == {}


@pytest.mark.usefixtures("relay_only")
def test_a_newer_version_still_unknown_after_the_wait_limit_is_dead_lettered_saying_what_to_do(
    customer, transport, event_registry, relay, consume, settings
):
    settings.EVENTBUS = {**settings.EVENTBUS, "NEWER_VERSION_WAIT_S": 0.3}
    placed_v2 = next_release()
    order_id = place_as_the_next_release(placed_v2, customer, ProductFactory(stock=10), 1)
    event_registry()
    relay()
    (entry_id, fields), *_ = transport.client.xrange(transport.key("orders"))
    consume("inventory")
    assert not DeadLetter.objects.exists(), "within the limit it waits"

    time.sleep(0.3)
    consume("inventory")

    row = DeadLetter.objects.get()
    assert (row.consumer_group, row.message_id, row.event_type) == (
        "inventory",
        entry_id.decode(),
        "orders.OrderPlaced",
    )
    assert row.event_id == uuid.UUID(json.loads(fields[b"event"])["event_id"])
    assert row.error.startswith(
        "NewerEventVersion: orders.OrderPlaced version 2 is newer than this consumer knows (version 1); waited "
    )
    assert row.error.endswith("upgrade it, then replay this dead letter")
    assert pending(transport) == {}
    assert retry_schedule(transport) == {}
    assert status(order_id) == "pending"


@pytest.mark.usefixtures("relay_only")
def test_deliveries_spent_waiting_do_not_use_up_the_attempts_of_the_upgraded_consumer(
    transport, event_registry, relay, consume
):
    def flaky_v2() -> type[ScriptedEvent]:
        @dataclass(frozen=True)
        class Flaky(ScriptedEvent, version=2):
            product_id: int
            reason: str

        return Flaky

    product = ProductFactory(stock=0)
    with transaction.atomic():
        outbox.record(flaky_v2()(product_id=product.pk, reason="restock"), aggregate_id=product.pk)
    event_registry()
    relay()
    for _ in range(MAX_ATTEMPTS + 2):
        consume("inventory")
        wait_for_due_retries()
    assert max(times_delivered(transport).values()) > MAX_ATTEMPTS
    flaky_v2()  # upgraded; its handler then fails once, as any handler may
    script.fail(product, times=1)
    try:
        runs = [consume("inventory")]
        while not runs[-1].processed and len(runs) < 5:
            wait_for_due_retries()
            runs.append(consume("inventory"))
    finally:
        script.reset()

    assert [sum(getattr(r, n) for r in runs) for n in ("retried", "dead", "processed")] == [1, 0, 1]
    assert Product.objects.get(pk=product.pk).stock == 1
    assert not DeadLetter.objects.exists()


# --- the codec ------------------------------------------------------------------------------------


def placed(**changes: Any) -> dict[str, Any]:
    """An OrderPlaced v1 envelope as JSON data, with some top-level fields changed."""
    event = OrderPlaced(
        order_id=uuid.uuid4(), customer_id=7, items=(OrderLine(product_id=1, quantity=2),), total=Decimal("5")
    )
    return {**json.loads(encode(Envelope.new(event, aggregate_id=event.order_id))), **changes}


def test_an_envelope_with_fields_this_release_does_not_know_decodes_as_without_them():
    data = placed()
    added_by_a_newer_producer = {"tenant": "acme", "trace": {"parent": "00-4bf9-00f0-01"}, "priority": None}

    assert decode(json.dumps({**data, **added_by_a_newer_producer})) == decode(json.dumps(data))


def test_upcasters_chain_an_old_version_up_to_the_newest_class(event_registry):
    @dataclass(frozen=True)
    class Renamed(OrderEvent, name="Versioned", version=3):
        order_id: uuid.UUID
        amount: Decimal
        currency: str

    @upcaster("orders.Versioned", from_version=1)
    def total_becomes_amount(payload: dict[str, Any]) -> dict[str, Any]:
        payload = dict(payload)
        payload["amount"] = payload.pop("total")
        return payload

    @upcaster("orders.Versioned", from_version=2)
    def every_amount_was_in_euros(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "currency": "EUR"}

    v1 = {
        **placed(),
        "type": "orders.Versioned",
        "version": 1,
        "payload": {"order_id": str(uuid.uuid4()), "total": "9.50"},
    }

    envelope = decode(json.dumps(v1))

    assert envelope.payload == Renamed(
        order_id=uuid.UUID(v1["payload"]["order_id"]), amount=Decimal("9.50"), currency="EUR"
    )
    assert (envelope.type, envelope.version) == ("orders.Versioned", 3)


def test_an_older_version_with_a_missing_upcaster_step_is_unknown_naming_the_step(event_registry):
    @dataclass(frozen=True)
    class Versioned(OrderEvent, version=3):
        order_id: uuid.UUID

    upcaster("orders.Versioned", from_version=2)(lambda p: p)

    with pytest.raises(UnknownEventType, match="no upcaster from version 1"):
        decode(json.dumps({**placed(), "type": "orders.Versioned", "version": 1}))


def test_an_upcaster_failing_on_a_payload_makes_the_message_invalid_not_a_crash(event_registry):
    @dataclass(frozen=True)
    class Versioned(OrderEvent, version=2):
        order_id: uuid.UUID

    upcaster("orders.Versioned", from_version=1)(lambda p: {**p, "order_id": p["id"]})

    with pytest.raises(InvalidEvent, match=r"orders\.Versioned v1: upcaster to v2 failed: KeyError\('id'\)"):
        decode(json.dumps({**placed(), "type": "orders.Versioned", "version": 1}))
