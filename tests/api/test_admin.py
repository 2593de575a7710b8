"""The Django admin, signed in as a superuser, over data the real system produced: an order
placed through the API and carried through relay and consumers, and a malformed message the
consumers dead-lettered."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import Model
from django.urls import reverse

from eventbus.models import DeadLetter, OutboxEvent
from inventory.models import Reservation, StockAdjustment
from notifications.models import Notification
from orders.models import CatalogProduct, Order

pytestmark = pytest.mark.django_db(transaction=True)

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


def admin_url(model: type[Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_admin_changelist_and_change_page_of_every_registered_model_are_200(shop, superuser_client, model):
    obj = model._default_manager.first()
    assert obj is not None, "the shop fixture made no row of this model"

    changelist = superuser_client.get(admin_url(model, "changelist"))
    change_page = superuser_client.get(admin_url(model, "change", quote(obj.pk)))

    assert changelist.status_code == 200
    assert changelist.context["cl"].result_count >= 1
    assert change_page.status_code == 200
    assert change_page.context["original"] == obj


def test_admin_order_page_shows_its_items_inline(shop, superuser_client):
    response = superuser_client.get(admin_url(Order, "change", shop["id"]))

    [inline] = response.context["inline_admin_formsets"]
    assert inline.opts.model._meta.label == "orders.OrderItem"
    assert "KB-1" in response.content.decode()


def test_admin_outbox_events_are_read_only(shop, superuser_client):
    event = OutboxEvent.objects.first()

    assert superuser_client.get(admin_url(OutboxEvent, "add")).status_code == 403
    page = superuser_client.get(admin_url(OutboxEvent, "change", event.pk))
    assert page.context["has_add_permission"] is False
    assert page.context["has_change_permission"] is False
    assert 'name="_save"' not in page.content.decode()
    response = superuser_client.post(admin_url(OutboxEvent, "change", event.pk), {"event_type": "forged"})
    assert response.status_code == 403
    assert OutboxEvent.objects.get(pk=event.pk).event_type == event.event_type


@pytest.mark.parametrize("model", [CatalogProduct, Reservation, StockAdjustment], ids=lambda model: model._meta.label)
def test_admin_catalog_copy_and_stock_ledger_cannot_be_added_edited_or_deleted(shop, superuser_client, model):
    obj = model._default_manager.first()

    assert superuser_client.get(admin_url(model, "add")).status_code == 403
    assert superuser_client.post(admin_url(model, "change", quote(obj.pk)), {}).status_code == 403
    assert superuser_client.post(admin_url(model, "delete", quote(obj.pk)), {"post": "yes"}).status_code == 403
    assert model._default_manager.filter(pk=obj.pk).exists()


def field_inputs(html: str, model: type[Model]) -> list[str]:
    """The model's fields the page offers as form inputs (a read-only field is shown as text)."""
    names = [f.name for f in model._meta.concrete_fields]
    return [name for name in names if re.search(rf'<(input|textarea|select)[^>]* name="{name}"', html)]


def test_admin_order_page_shows_every_field_read_only_with_no_save_and_no_delete(shop, superuser_client):
    page = superuser_client.get(admin_url(Order, "change", shop["id"])).content.decode()

    assert field_inputs(page, Order) == []
    assert "Idempotency key" in page
    assert "Request hash" in page
    assert 'name="_save"' not in page
    assert "deletelink" not in page


@pytest.mark.parametrize("model", [Order, DeadLetter, Notification], ids=lambda model: model._meta.label)
def test_admin_cannot_edit_what_the_services_own(shop, superuser_client, model):
    obj = model._default_manager.first()

    page = superuser_client.get(admin_url(model, "change", quote(obj.pk))).content.decode()
    response = superuser_client.post(admin_url(model, "change", quote(obj.pk)), {"status": "forged"})

    assert field_inputs(page, model) == []
    assert 'name="_save"' not in page
    assert response.status_code == 403
    assert model._default_manager.get(pk=obj.pk).status == obj.status


@pytest.mark.parametrize("model", [Order, DeadLetter], ids=lambda model: model._meta.label)
def test_admin_does_not_delete_orders_or_dead_letters(shop, superuser_client, model):
    obj = model._default_manager.first()

    changelist = superuser_client.get(admin_url(model, "changelist"))
    response = superuser_client.post(admin_url(model, "delete", quote(obj.pk)), {"post": "yes"})
    bulk = superuser_client.post(
        admin_url(model, "changelist"), {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    )

    assert "delete_selected" not in dict(changelist.context["action_form"].fields["action"].choices)
    assert response.status_code == 403
    assert bulk.status_code in (200, 302)  # "no action selected": the admin knows no such action here
    assert model._default_manager.filter(pk=obj.pk).exists()


def test_admin_cancels_orders_and_discards_dead_letters_by_their_actions(shop, superuser_client):
    letter = DeadLetter.objects.first()

    superuser_client.post(admin_url(Order, "changelist"), {"action": "cancel_orders", "_selected_action": [shop["id"]]})
    superuser_client.post(admin_url(DeadLetter, "changelist"), {"action": "discard", "_selected_action": [letter.pk]})

    assert Order.objects.get(pk=shop["id"]).status == Order.Status.CANCELLED
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetter.Status.DISCARDED
