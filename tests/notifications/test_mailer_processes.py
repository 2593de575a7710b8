"""The Procfile's processes with a real SMTP server that is down, then silent, then back: orders
keep being confirmed and notifications recorded meanwhile, the mailer keeps beating, and once
the server is back every customer gets exactly one e-mail per order outcome, with no operator
step."""

from __future__ import annotations

import random

import pytest

from eventbus.messages import registry
from eventbus.runtime import heartbeats
from notifications.models import Notification
from orders.models import Order
from orders.services import order_place
from tests.factories import ProductFactory, UserFactory
from tests.notifications.smtpserver import SmtpServer
from tests.processes import Processes, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def place(n: int, products: list, customers: list, rng: random.Random) -> None:
    for _ in range(n):
        order_place(customer=rng.choice(customers), items=[(rng.choice(products).pk, 1)])


def settled(orders: int) -> bool:
    return (
        Order.objects.count() == orders
        and not Order.objects.filter(status=Order.Status.PENDING).exists()
        and Notification.objects.count() == orders
    )


def test_a_mail_server_down_then_silent_then_back_gets_every_email_exactly_once(processes: Processes, transport):
    smtp = SmtpServer()  # down: nothing listens on its port yet
    processes.env_overrides.update(
        EMAIL_URL=smtp.url, EMAIL_TIMEOUT="1", EMAIL_RETRY_BASE_S="1", EMAIL_RETRY_MAX_S="4", EMAIL_BATCH_SIZE="10"
    )
    rng = random.Random(21)
    customers = UserFactory.create_batch(8)
    products = [ProductFactory(stock=1000) for _ in range(4)]
    processes.start_relay()
    for group in registry.groups():
        processes.start_consumer(group, f"{group}-1")
    processes.start_mailer()
    try:
        place(25, products, customers, rng)
        wait_until(lambda: settled(25), timeout=60, what="orders to be confirmed while the mail server is down")
        assert not Notification.objects.filter(status="sent").exists()
        processes.wait_for_log("mailer", "the mail server does not accept e-mail")

        smtp.silent()
        place(15, products, customers, rng)
        wait_until(lambda: settled(40), timeout=60, what="orders to be confirmed while the mail server is silent")
        wait_until(
            lambda: Notification.objects.filter(error__contains="EMAIL_TIMEOUT").exists(),
            timeout=60, what="the mailer to give up waiting on the silent server",
        )  # fmt: skip
        assert any(p.role == "mailer" for p in heartbeats.live_processes(transport)), "the mailer still beats"
        assert not Notification.objects.filter(status="sent").exists()

        smtp.start()
        wait_until(lambda: len(smtp.received) >= 40, timeout=90, what="every e-mail once the server is back")
        wait_until(lambda: Notification.objects.filter(status="sent").count() == 40, timeout=30, what="all marked sent")
        emails = smtp.by_event()
        assert emails == {str(e): 1 for e in Notification.objects.values_list("event_id", flat=True)}
        assert not Notification.objects.exclude(status="sent").exists()
    finally:
        smtp.stop()
