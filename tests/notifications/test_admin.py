"""Dead e-mails in the admin: listed with their error and attempts, and sent again from there."""

from __future__ import annotations

import pytest
from django.test import Client

from notifications.models import Notification
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(StaffFactory(is_superuser=True))
    return client


def test_the_admin_lists_dead_emails_and_shows_why(admin_client, record):
    dead, _waiting = record(2)
    Notification.objects.filter(pk=dead.pk).update(status="dead", attempts=1, error="550 5.1.1 No such mailbox")

    listing = admin_client.get("/admin/notifications/notification/?status__exact=dead")
    page = admin_client.get(f"/admin/notifications/notification/{dead.pk}/change/")

    assert listing.status_code == 200
    assert str(dead.order_id) in listing.content.decode()
    assert listing.context["cl"].result_count == 1
    assert "550 5.1.1 No such mailbox" in page.content.decode()


def test_send_again_queues_the_dead_ones_chosen_and_leaves_the_others(admin_client, record):
    dead, sent = record(2)
    Notification.objects.filter(pk=dead.pk).update(status="dead", attempts=3, error="550")
    Notification.objects.filter(pk=sent.pk).update(status="sent")

    response = admin_client.post(
        "/admin/notifications/notification/", {"action": "replay", "_selected_action": [dead.pk, sent.pk]}
    )

    assert response.status_code == 302
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == ("pending", 0)
    assert Notification.objects.get(pk=sent.pk).status == "sent", "a sent e-mail is never sent again"
