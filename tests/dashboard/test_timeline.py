"""The order timeline's labels (dashboard.timeline: `trace_order` and the admin's order page):
an event no group has applied yet is labelled by where it is, the outbox, and its text says
whether it was published, never "unpublished" beside "published <time>"."""

from __future__ import annotations

import re

import pytest

from dashboard.timeline import order_timeline
from orders.models import Order
from orders.services import order_place
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kept_outbox(settings):
    """Published rows kept, as with OUTBOX_RETENTION_S set, so the timeline can show them."""
    settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_S": 3600}


def outbox_entries(order: Order) -> list[tuple[str, str]]:
    return [(e.kind, e.what) for e in order_timeline(order) if "recorded" in e.what]


@pytest.mark.usefixtures("kept_outbox")
def test_a_published_event_no_group_applied_yet_is_an_outbox_entry_that_says_when_it_was_published(customer, relay):
    order = order_place(customer=customer, items=[(ProductFactory().pk, 1)])
    relay()

    [(kind, what)] = outbox_entries(order)

    assert kind == "outbox"
    assert re.fullmatch(r"orders\.OrderPlaced recorded, published \d\d:\d\d:\d\d", what), what


@pytest.mark.usefixtures("kept_outbox")
def test_an_event_not_yet_published_says_so(customer, settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": False}  # waits for a relay: none runs

    order = order_place(customer=customer, items=[(ProductFactory().pk, 1)])

    assert outbox_entries(order) == [("outbox", "orders.OrderPlaced recorded, not yet published")]
