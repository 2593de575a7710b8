"""Placing alone: `python -m bench.placing_alone [ORDERS] [THREADS]` (DJANGO_SETTINGS_MODULE and
DATABASE_URL as for manage.py) places ORDERS orders (default 2,000) of two lines through
`orders.services.order_place`, one transaction each, from THREADS threads of this process
(default 1), with nothing else running: no relay, no consumer (the events stay in the outbox).
It prints, per order, the wall time per thread and the CPU of this process and of the
PostgreSQL server (bench.fleet.server_cpu_seconds, read before and after), so two checkouts can be
compared on the placing path alone. It writes its own products and customers into the
database it is given: use a scratch one."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from decimal import Decimal

import django


def main(orders: int = 2000, threads: int = 1) -> dict:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection, connections

    from bench.fleet import server_cpu_seconds
    from inventory.services import product_create
    from orders.models import CatalogProduct
    from orders.services import order_place

    run = uuid.uuid4().hex[:8]
    products = [
        product_create(sku=f"alone-{run}-{i}", name=f"Product {i}", price=Decimal("9.90"), stock=10**9).pk
        for i in range(20)
    ]
    # The orders consumer would copy them into the orders app's catalog; none runs here.
    CatalogProduct.objects.bulk_create(
        CatalogProduct(product_id=p, sku=f"alone-{run}-{i}", name=f"Product {i}", price=Decimal("9.90"), active=True,
                       revision=1)
        for i, p in enumerate(products)
    )  # fmt: skip
    User = get_user_model()
    customers = [User.objects.create(username=f"alone-{run}-{i}") for i in range(50)]
    for i in range(200):  # warm the connection's prepared plans, then fresh statistics
        order_place(customer=customers[i % 50], items=[(products[i % 20], 1), (products[(i + 1) % 20], 2)])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    connections.close_all()

    def work(k: int) -> None:
        try:
            for i in range(k, orders, threads):
                order_place(customer=customers[i % 50], items=[(products[i % 20], 1), (products[(i + 7) % 20], 2)])
        finally:
            connections.close_all()

    pg0, cpu0, wall0 = server_cpu_seconds()["postgresql"], time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    pg = server_cpu_seconds()["postgresql"] - pg0
    return {
        "orders": orders, "threads": threads, "orders_per_s": round(orders / wall, 1),
        "wall_ms_per_order_per_thread": round(1000 * wall * threads / orders, 3),
        "python_cpu_ms_per_order": round(1000 * cpu / orders, 3),
        "postgres_cpu_ms_per_order": round(1000 * pg / orders, 3),
    }  # fmt: skip


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    sys.stdout.write(json.dumps(main(*args)) + "\n")
