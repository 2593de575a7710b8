"""An operator follows an order the intake took: `trace_order` says it is received before the
orders consumer writes it, then shows its whole life; `status` and `/readyz?pipeline=1` show the
intake's backlog."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import ProductFactory, UserFactory
from tests.intake.test_intake_web import post

pytestmark = pytest.mark.django_db(transaction=True)


def test_trace_order_and_status_follow_an_order_from_the_intake_to_its_notification(processes, pump, capsys):
    product = ProductFactory(stock=5)
    token = Token.objects.create(user=UserFactory()).key
    web = processes.start_web()
    pump()  # the consumer groups exist, as they do once the consumers have started

    status, _, order = post(web, token, [(product.pk, 1)])
    assert status == 202

    with pytest.raises(CommandError, match=f"order {order['id']} is received: the intake took it at"):
        call_command("trace_order", order["id"])
    with pytest.raises(SystemExit):  # 1: no consumer is alive (the pipeline runs in `pump` here)
        call_command("status")
    backlog = [line.split() for line in capsys.readouterr().out.splitlines() if "orders.intake" in line]
    # group, stream, read by, live consumers, lag, pending, retrying
    assert backlog == [["orders", "orders.intake", "any", "0", "1", "0", "0"]]
    assert APIClient().get("/readyz?pipeline=1").json()["intake_backlog"] == 1

    pump()
    call_command("trace_order", order["id"])
    printed = capsys.readouterr().out
    assert "received by the intake, total" in printed
    assert "orders.OrderRequested applied by group orders" in printed
    assert "orders.OrderConfirmed applied by group notifications" in printed
    assert APIClient().get("/readyz?pipeline=1").json()["intake_backlog"] == 0
