"""An operator follows an order the web's desk placed: `trace_order` shows its whole life, from
the placing to the customer's notification."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from tests.factories import ProductFactory, UserFactory
from tests.intake.test_intake_web import post

pytestmark = pytest.mark.django_db(transaction=True)


def test_trace_order_follows_an_order_from_the_desk_to_its_notification(processes, pump, capsys):
    product = ProductFactory(stock=5)
    token = Token.objects.create(user=UserFactory()).key
    web = processes.start_web()

    status, _, order = post(web, token, [(product.pk, 1)])
    assert status == 201

    call_command("trace_order", order["id"])
    assert "placed, total" in capsys.readouterr().out
    pump()
    call_command("trace_order", order["id"])
    printed = capsys.readouterr().out
    assert "orders.OrderPlaced applied by group inventory" in printed
    assert "orders.OrderConfirmed applied by group notifications" in printed
