"""A customer's notifications: produced by the consumers, read through the API."""

from __future__ import annotations

import pytest

from notifications.models import Notification
from tests.factories import ProductFactory

NOTIFICATION_FIELDS = {"id", "order_id", "kind", "channel", "subject", "body", "status", "created_at", "sent_at"}


@pytest.mark.django_db(transaction=True)
def test_notification_list_shows_the_callers_own_notifications_only(api, other_api, place_order, pump):
    product = ProductFactory(stock=5)
    mine = place_order(api, (product.pk, 1))
    theirs = place_order(other_api, (product.pk, 1))
    pump()
    assert Notification.objects.filter(order_id=theirs["id"]).exists()

    response = api.get("/api/notifications/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    [notification] = body["results"]
    assert set(notification) == NOTIFICATION_FIELDS
    assert (notification["order_id"], notification["kind"], notification["status"]) == (
        mine["id"], "order_confirmed", "sent",
    )  # fmt: skip
    assert mine["id"][:8] in notification["subject"]


@pytest.mark.django_db(transaction=True)
def test_another_customers_notification_is_404(api, other_api, place_order, pump):
    theirs = place_order(other_api, (ProductFactory(stock=5).pk, 1))
    pump()
    notification = Notification.objects.get(order_id=theirs["id"])

    assert api.get(f"/api/notifications/{notification.pk}/").status_code == 404
    assert other_api.get(f"/api/notifications/{notification.pk}/").json()["order_id"] == theirs["id"]


@pytest.mark.django_db
def test_notification_list_is_empty_before_the_consumers_ran(api, place_order):
    place_order(api, (ProductFactory(stock=5).pk, 1))

    assert api.get("/api/notifications/").json()["count"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("notification_id", ["abc", "99999999999999999999"])
def test_malformed_or_unknown_notification_id_is_404(api, notification_id):
    assert api.get(f"/api/notifications/{notification_id}/").status_code == 404
