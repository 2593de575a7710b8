"""Errors that cannot succeed are parked at once, and a message failing its last attempt is
parked too: a DeadLetter row and an entry on the group's dead-letter stream, then acknowledged.
Nothing is dropped silently and the rest of the batch goes on."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest
from django.utils import timezone

from eventbus.messages.codec import encode
from eventbus.messages.events import Envelope
from eventbus.models import DeadLetter
from inventory.models import Product
from tests.factories import ProductFactory
from tests.resilience.background import running
from tests.resilience.flaky import Flaky
from tests.resilience.streams import message_id, pending, retry_schedule

pytestmark = pytest.mark.django_db(transaction=True)


def stock(product: Product) -> int:
    return Product.objects.get(pk=product.pk).stock


def envelope_json(product: Product, **changes: object) -> str:
    """A well-formed Flaky envelope for this product, with some top-level keys changed."""
    data = json.loads(encode(Envelope.new(Flaky(product_id=product.pk), aggregate_id=product.pk)))
    return json.dumps({**data, **changes})


@pytest.mark.parametrize(
    ("fields_for", "reason"),
    [
        pytest.param(
            lambda p: {"type": Flaky.type, "event": "{not json"},
            "MalformedMessage: message is not valid JSON",
            id="not-json",
        ),
        pytest.param(
            lambda p: {"type": Flaky.type},
            "MalformedMessage: message has no 'event' field",
            id="no-event-field",
        ),
        pytest.param(
            lambda p: {"type": "tests.Nope", "event": envelope_json(p, type="tests.Nope")},
            "UnknownEventType: unknown event type 'tests.Nope' version 1",
            id="unknown-type",
        ),
        pytest.param(
            lambda p: {"type": Flaky.type, "event": envelope_json(p, version=0)},
            "UnknownEventType: unknown event type 'tests.Flaky' version 0",
            id="older-version-no-upcaster-reaches",
        ),
        pytest.param(
            lambda p: {"type": Flaky.type, "event": envelope_json(p, payload={"product_id": "seven"})},
            "InvalidEvent: tests.Flaky v1: payload.product_id: expected an integer",
            id="invalid-payload",
        ),
    ],
)
def test_a_message_that_cannot_be_decoded_is_dead_lettered_at_once_and_the_batch_goes_on(
    fields_for, reason, handler, transport, publish_flaky, consumer
):
    bad, good = ProductFactory(stock=0), ProductFactory(stock=0)
    (bad_id,) = transport.publish([("orders", fields_for(bad))])
    publish_flaky(good)  # behind the bad one, in the same batch

    stats = consumer().run(once=True)

    row = DeadLetter.objects.get()
    assert (row.consumer_group, row.stream, row.message_id, row.attempts) == ("inventory", "orders", bad_id, 1)
    assert row.error.startswith(reason)
    assert (stats.retried, stats.dead, stats.processed) == (0, 1, 1)
    assert retry_schedule(transport) == {}
    assert handler.calls(bad) == 0
    assert stock(good) == 1
    assert pending(transport) == {}


def test_a_handler_raising_a_permanent_error_is_dead_lettered_at_once_and_the_batch_goes_on(
    handler, transport, publish_flaky, consumer
):
    refused, good = ProductFactory(stock=0), ProductFactory(stock=0)
    handler.refuse(refused)
    refused_event, _ = publish_flaky(refused, good)

    stats = consumer().run(once=True)

    row = DeadLetter.objects.get()
    assert (row.message_id, row.event_id, row.attempts) == (
        message_id(transport, refused_event),
        refused_event.event_id,
        1,
    )
    assert row.error == f"Refused: product {refused.pk} refuses restocks"
    assert "raise Refused(" in row.traceback
    assert (stats.retried, stats.dead, stats.processed) == (0, 1, 1)
    # Once in the batch (rolled back), once on its own savepoint to find the culprit (rolled back).
    assert handler.calls(refused) == 2
    assert (stock(refused), stock(good)) == (0, 1), "the refused restock was rolled back, the other kept"
    assert pending(transport) == {}


@dataclass
class GivenUp:
    product: Product
    envelope: Envelope
    entry_id: str
    started: dt.datetime
    ended: dt.datetime


@pytest.fixture
def given_up(handler, transport, publish_flaky, consumer) -> GivenUp:
    """A Flaky event whose handler always fails, run by a long-running consumer (as in
    production) until it gives up on it."""
    product = ProductFactory(stock=0)
    handler.fail_always(product)
    started = timezone.now()
    (envelope,) = publish_flaky(product)
    with running(consumer(block_ms=50)) as background:
        background.wait_until(DeadLetter.objects.exists, what="the message to be dead-lettered")
    return GivenUp(product, envelope, message_id(transport, envelope), started, timezone.now())


def test_after_its_last_attempt_a_message_is_recorded_as_a_dead_letter_row_with_all_it_needs(given_up, handler):
    product, envelope = given_up.product, given_up.envelope

    row = DeadLetter.objects.get()

    assert (row.consumer_group, row.stream, row.message_id) == ("inventory", "orders", given_up.entry_id)
    assert (row.event_id, row.event_type) == (envelope.event_id, Flaky.type)
    assert row.fields == {"type": Flaky.type, "event": encode(envelope)}
    assert row.error == f"RuntimeError: restock of product {product.pk} failed, as scripted"
    assert "restock_flakily" in row.traceback
    assert row.traceback.rstrip().endswith(row.error)
    assert row.attempts == 3 == handler.calls(product)
    assert given_up.started <= row.first_failed_at <= row.last_failed_at <= given_up.ended
    assert row.status == DeadLetter.Status.DEAD
    assert stock(product) == 0


def test_a_dead_letter_records_when_its_first_attempt_failed_not_only_the_last(given_up, transport):
    row = DeadLetter.objects.get()

    assert row.first_failed_at < row.last_failed_at, "three attempts with backoff between them"
    assert not transport.client.exists(transport.key("eventbus:first-failure:inventory")), "forgotten once parked"


def test_after_its_last_attempt_a_message_is_copied_to_the_dead_letter_stream_and_acknowledged(given_up, transport):
    row = DeadLetter.objects.get()

    entries = transport.client.xrange(transport.key("eventbus:dead:inventory"))

    assert len(entries) == 1
    fields = {k.decode(): v.decode() for k, v in entries[0][1].items()}
    assert fields == {
        "type": Flaky.type,
        "event": row.fields["event"],
        "deadletter_row": str(row.pk),
        "source_stream": "orders",
        "source_id": given_up.entry_id,
        "error": row.error,
    }
    assert transport.client.xpending(transport.key("orders"), "inventory")["pending"] == 0
    assert retry_schedule(transport) == {}
