"""A consumer's cost per batch: `python -m bench.batch_cost [MESSAGES] [BATCH ...]`
(DJANGO_SETTINGS_MODULE and DATABASE_URL/REDIS_URL as for manage.py) places MESSAGES orders of
one line (default 500), publishes their events with one relay pass, and has an `inventory`
consumer in this process reserve them in batches of each BATCH (default 1 and 100), one step at
a time, with nothing else running. It prints, per message, the CPU of this process (the
consumer's Python: decoding, the inbox, the handler, the statements, the XACK) and of the
PostgreSQL server, and the wall time. A batch costs a transaction, its inbox and batch rows and
an XACK whatever its size: this shows what a consumer that keeps up message by message pays for
each one. It writes its own products, customers and orders into the database it is given: use
a scratch one."""

from __future__ import annotations

import json
import sys
import time
import uuid
from decimal import Decimal

import django


def main(messages: int = 500, batches: tuple[int, ...] = (1, 100)) -> dict:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from bench.fleet import server_cpu_seconds
    from eventbus.redis.transport import get_transport
    from eventbus.runtime.consumer import Consumer
    from eventbus.runtime.relay import Relay
    from orders.models import Order
    from orders.services import order_place
    from tests.factories import ProductFactory

    run = uuid.uuid4().hex[:8]
    transport = get_transport()
    product = ProductFactory(sku=f"batch-{run}", price=Decimal("1.00"), stock=10**9)
    User = get_user_model()
    # One order each: a customer may hold only so many orders waiting for confirmation.
    customers = [User(username=f"batch-{run}-{i}") for i in range(messages)]
    User.objects.bulk_create(customers)
    out: dict = {"messages": messages, "batches": {}}
    for batch in batches:
        placed = [order_place(customer=c, items=[(product.pk, 1)]).pk for c in customers]
        Relay(transport=transport).run(once=True)
        consumer = Consumer("inventory", name=f"batch-cost-{run}", batch_size=batch, block_ms=0, transport=transport)
        pg0, cpu0, wall0 = server_cpu_seconds()["postgresql"], time.process_time(), time.perf_counter()
        while consumer.stats.processed < messages:
            consumer.step(once=True)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        pg = server_cpu_seconds()["postgresql"] - pg0
        out["batches"][batch] = {
            "consumer_cpu_ms_per_message": round(1000 * cpu / messages, 3),
            "postgresql_cpu_ms_per_message": (
                round(1000 * pg / messages, 3) if connection.vendor == "postgresql" else None
            ),
            "wall_ms_per_message": round(1000 * wall / messages, 3),
        }
        Order.objects.filter(pk__in=placed).update(status=Order.Status.CONFIRMED)  # the customers may order again
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    sys.stdout.write(json.dumps(main(*(args[:1] or [500]), tuple(args[1:]) or (1, 100)), indent=2) + "\n")
