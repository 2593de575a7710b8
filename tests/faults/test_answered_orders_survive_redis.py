"""Taken means kept: every order the web answered 201 for ends confirmed or rejected, with its
notification, whatever Redis does after the answer. Customers place orders through the Procfile's
web (2 workers) while the orders consumer is stopped, so that their orders wait; Redis (keeping
nothing on disk) is killed and comes back empty, then is flushed; the clients retry 429 and 503
with their Idempotency-Key as a real client would. In the end every answered order is final,
the stock is exact, each order has one notification, and `check_invariants` passes."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter

import pytest
import redis
from django.core.management import call_command
from django.db import connections
from django.db.models import Sum
from rest_framework.authtoken.models import Token

from inventory.models import Product
from notifications.models import Notification
from orders.models import Order, OrderItem
from tests.factories import ProductFactory, UserFactory
from tests.processes import Processes, RedisServer, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 40


class Customer(threading.Thread):
    """Places orders one after another, each with its own Idempotency-Key, retrying an order
    with the same key on 429, 503 or a dropped connection until it is answered 201 (or 4xx)."""

    def __init__(self, web: str, token: str, product: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.web, self.token, self.product, self.stop = web, token, product, stop
        self.answered: list[str] = []
        self.statuses: Counter[int] = Counter()

    def run(self) -> None:
        while not self.stop.is_set():
            key = str(uuid.uuid4())
            while not self.stop.is_set():
                status, retry_after, body = self._post(key)
                self.statuses[status] += 1
                if status == 201:
                    self.answered.append(body["id"])
                    break
                if status not in (0, 429, 503):
                    break
                time.sleep(min(float(retry_after or 0.2), 1.0))

    def _post(self, key: str) -> tuple[int, str | None, dict]:
        request = urllib.request.Request(
            f"{self.web}/api/orders/", method="POST",
            data=json.dumps({"items": [{"product_id": self.product, "quantity": 1}]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Token {self.token}",
                     "Idempotency-Key": key},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, None, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Retry-After"), json.loads(exc.read() or b"{}")
        except OSError:
            return 0, None, {}


def answered(customers: list[Customer]) -> int:
    return sum(len(c.answered) for c in customers)


@pytest.mark.parametrize("private_redis", [False], indirect=True)
def test_every_order_answered_201_ends_final_when_redis_comes_back_empty_and_is_flushed(
    private_redis: RedisServer, processes: Processes
):
    stock = 5000
    product = ProductFactory(stock=stock, price="3.00")
    tokens = [Token.objects.create(user=UserFactory()).key for _ in range(CUSTOMERS)]
    connections.close_all()
    # No cap on pending orders (the orders consumer is stopped, so every order stays pending and
    # a fast machine would reach 40 x 20 before the drill ends); the rate limits stay on.
    processes.env_overrides.update(
        TRIM_INTERVAL_S="1", RECONCILE_AFTER_S="5", RECONCILE_INTERVAL_S="2", MAX_PENDING_ORDERS_PER_CUSTOMER="0"
    )
    web = processes.start_web(workers=2)
    processes.start_relay()
    processes.start_consumer("inventory", "inventory-1")
    processes.start_consumer("notifications", "notifications-1")
    # The orders consumer is not running: answered orders wait, reserved, for their confirmation.

    stop = threading.Event()
    customers = [Customer(web, token, product.pk, stop) for token in tokens]
    for customer in customers:
        customer.start()
    try:
        wait_until(lambda: answered(customers) >= 150, timeout=90, what="150 orders answered")
        private_redis.kill()  # no append-only file, no snapshot: it comes back empty
        time.sleep(0.5)
        private_redis.start()
        before = answered(customers)
        wait_until(lambda: answered(customers) >= before + 150, timeout=90, what="150 more after the restart")
        redis.Redis.from_url(private_redis.url).flushall()
        before = answered(customers)
        wait_until(lambda: answered(customers) >= before + 150, timeout=90, what="150 more after FLUSHALL")
    finally:
        stop.set()
        for customer in customers:
            customer.join(timeout=30)

    ids = [order_id for c in customers for order_id in c.answered]
    assert len(ids) == len(set(ids)), "an Idempotency-Key retry made a second order"
    statuses = sum((c.statuses for c in customers), Counter())
    assert set(statuses) <= {201, 429, 503, 0}, statuses
    assert Order.objects.filter(pk__in=ids).count() == len(ids), "every order answered 201 is in the database"

    processes.start_consumer("orders", "orders-1")
    wait_until(
        lambda: not Order.objects.filter(pk__in=ids, status=Order.Status.PENDING).exists()
        and Notification.objects.filter(order_id__in=ids).count() == len(ids),
        timeout=180, what="every answered order to be final and notified",
    )  # fmt: skip
    assert Order.objects.count() == len(ids), "nothing was placed that was not answered"
    assert Counter(Notification.objects.values_list("order_id", flat=True)).most_common(1)[0][1] == 1
    confirmed = OrderItem.objects.filter(order__status=Order.Status.CONFIRMED).aggregate(n=Sum("quantity"))["n"]
    assert Product.objects.get(pk=product.pk).stock == stock - (confirmed or 0)
    assert Order.objects.filter(status=Order.Status.CONFIRMED).count() == len(ids)  # stock was plenty
    assert "Redis lost data" in processes.log("relay")
    call_command("check_invariants")
