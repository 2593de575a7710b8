"""The DeadLetter admin: operators filter, inspect, replay and discard dead letters."""

from __future__ import annotations

import pytest
from django.urls import reverse

from eventbus.models import DeadLetter
from inventory.models import Product
from tests.resilience.flaky import Flaky

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:eventbus_deadletter_changelist"


@pytest.fixture
def refused(product, publish_flaky, consumer) -> DeadLetter:
    publish_flaky(product)
    consumer("inventory").run(once=True)
    return DeadLetter.objects.get()


@pytest.fixture
def garbled(transport, relay, consumer) -> DeadLetter:
    """A message that is not JSON, dead-lettered by the notifications group."""
    relay()
    transport.publish([("orders", {"type": "tests.Garbled", "event": "{not json"})])
    consumer("notifications").run(once=True)
    return DeadLetter.objects.get(consumer_group="notifications")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"consumer_group": "inventory"}, "refused"),
        ({"consumer_group": "notifications"}, "garbled"),
        ({"event_type": Flaky.type}, "refused"),
        ({"event_type": "tests.Garbled"}, "garbled"),
        ({"status": "dead"}, "both"),
    ],
)
def test_the_changelist_filters_dead_letters_by_group_type_and_status(admin_client, refused, garbled, query, expected):
    response = admin_client.get(reverse(CHANGELIST), query)

    assert response.status_code == 200
    wanted = {"refused": {refused.pk}, "garbled": {garbled.pk}, "both": {refused.pk, garbled.pk}}[expected]
    assert {row.pk for row in response.context["cl"].result_list} == wanted


def test_the_changelist_filters_dead_letters_by_error(admin_client, refused, garbled):
    response = admin_client.get(reverse(CHANGELIST), {"error": refused.error})

    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [refused.pk]
    assert refused.error in response.content.decode()


def test_the_detail_page_shows_the_error_traceback_and_raw_fields(admin_client, refused):
    response = admin_client.get(reverse("admin:eventbus_deadletter_change", args=[refused.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert refused.message_id in page
    assert str(refused.event_id) in page
    assert "raise Refused(" in page
    assert "&quot;product_id&quot;" in page, "the envelope, pretty-printed"


def test_the_replay_action_delivers_the_selected_dead_letters_again(admin_client, refused, product, handler, consumer):
    handler.succeed(product)

    response = admin_client.post(reverse(CHANGELIST), {"action": "replay", "_selected_action": [refused.pk]})

    assert response.status_code == 302
    assert DeadLetter.objects.get().status == DeadLetter.Status.REPLAYED
    consumer("inventory").run(once=True)
    assert DeadLetter.objects.get().status == DeadLetter.Status.RESOLVED
    assert Product.objects.get(pk=product.pk).stock == 1


def test_the_discard_action_discards_only_the_selected_dead_letters(admin_client, refused, garbled):
    response = admin_client.post(reverse(CHANGELIST), {"action": "discard", "_selected_action": [garbled.pk]})

    assert response.status_code == 302
    statuses = dict(DeadLetter.objects.values_list("pk", "status"))
    assert statuses == {refused.pk: DeadLetter.Status.DEAD, garbled.pk: DeadLetter.Status.DISCARDED}
