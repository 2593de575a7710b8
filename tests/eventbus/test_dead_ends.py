"""Errors no retry can fix go to the dead letters at once, with their reason: a real consumer,
the real database, and an event whose value the column cannot hold."""

from __future__ import annotations

import decimal
from dataclasses import dataclass

import pytest
from django.db import connection, transaction
from django.db.models import F

from eventbus.messages.events import Envelope, Event
from eventbus.messages.registry import handles
from eventbus.models import DeadLetter
from eventbus.store import outbox
from eventbus.store.failures import cannot_succeed
from inventory.models import Product
from tests.factories import ProductFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_only")]


class TestEvent(Event, stream="orders", aggregate_type="test", prefix="tests"):
    """Events only this module publishes."""


@dataclass(frozen=True)
class StockAdded(TestEvent):
    """Add to one product's stock, unchecked: PostgreSQL itself refuses a sum past its integer."""

    product_id: int
    quantity: int


@handles(StockAdded, group="inventory")
def add_stock(envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        event: StockAdded = envelope.payload  # type: ignore[assignment]
        Product.objects.filter(pk=event.product_id).update(stock=F("stock") + event.quantity)


def publish(*events: StockAdded) -> None:
    with transaction.atomic():
        for event in events:
            outbox.record(event, aggregate_id=event.product_id)


def test_an_integer_out_of_range_is_dead_lettered_after_one_attempt_with_its_reason(relay, consume, settings):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite stores any integer; the range error is PostgreSQL's (CI runs it)")
    settings.EVENTBUS = {**settings.EVENTBUS, "RETRY": {"default": {"base_s": 0.01, "cap_s": 0.05, "max_attempts": 5}}}
    bad, good = ProductFactory(stock=1), ProductFactory(stock=1)
    publish(StockAdded(product_id=bad.pk, quantity=2**31 - 1), StockAdded(product_id=good.pk, quantity=6))
    relay()

    stats = consume("inventory")

    row = DeadLetter.objects.get()
    assert (row.consumer_group, row.attempts, row.event_type) == ("inventory", 1, StockAdded.type)
    assert row.error.startswith("DataError: integer out of range"), row.error
    assert (stats.retried, stats.dead, stats.processed) == (0, 1, 1)
    assert Product.objects.get(pk=bad.pk).stock == 1
    assert Product.objects.get(pk=good.pk).stock == 7, "the rest of the batch goes on"


@pytest.mark.parametrize(
    "error",
    [decimal.InvalidOperation(), ValueError("bad"), TypeError("bad")],
    ids=["invalid-decimal", "value-error", "type-error"],
)
def test_errors_a_retry_cannot_fix_are_not_retried(error):
    assert cannot_succeed(error)


def test_an_error_of_the_moment_is_retried():
    assert not cannot_succeed(RuntimeError("the mail server hung up"))
