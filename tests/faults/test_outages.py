"""Outages: Redis down (the API keeps taking orders, everything resumes on its own) and the
database down (consumers acknowledge nothing, back off, resume)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from eventbus.messages import registry
from eventbus.messages.codec import encode
from eventbus.messages.events import Envelope
from eventbus.redis.transport import Transport
from orders.events import OrderLine, OrderPlaced
from orders.models import Order
from tests.factories import ProductFactory, UserFactory
from tests.processes import ROOT, Processes, RedisServer, pending, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_orders_placed_while_redis_is_down_all_succeed_and_reach_a_final_status(
    private_redis: RedisServer, processes: Processes
):
    customer = UserFactory()
    product = ProductFactory(stock=100)
    api = APIClient()
    api.force_authenticate(customer)
    processes.start_relay()
    for group in registry.groups():
        processes.start_consumer(group, f"{group}-1")

    private_redis.stop()
    responses = [
        api.post("/api/orders/", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json")
        for _ in range(20)
    ]
    assert [r.status_code for r in responses] == [201] * 20
    processes.wait_for_log("relay", "REDIS_URL is unreachable")
    processes.wait_for_log("inventory-1", "REDIS_URL is unreachable")
    assert Order.objects.filter(status="pending").count() == 20, "nothing moves while Redis is down"

    private_redis.start()
    wait_until(
        lambda: Order.objects.filter(status="confirmed").count() == 20, timeout=60, what="every order to be confirmed"
    )
    for name in ("relay", "inventory-1", "orders-1", "notifications-1"):
        log = processes.log(name)
        assert log.count("REDIS_URL is unreachable") == 1, f"{name} says it once, not at every retry:\n{log}"
        assert "is reachable again" in log
        assert "Traceback" not in log


@pytest.fixture
def own_database(processes: Processes):
    """A PostgreSQL database of this test's own (migrated), which the test can take away."""
    db = connection.settings_dict
    name = f"fault_{uuid.uuid4().hex[:10]}"
    admin_dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    processes.env_overrides["DATABASE_URL"] = url
    env = processes.env()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)

    def set_available(available: bool) -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if available else "false"}')
            if not available:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])

    def sql(query: str) -> list[tuple]:
        with psycopg.connect(f"{admin_dsn.replace('dbname=postgres', f'dbname={name}')}") as conn:
            return conn.execute(query).fetchall()

    yield set_available, sql
    processes.stop_all()
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="takes a PostgreSQL database away (ALLOW_CONNECTIONS false); an SQLite file cannot be made unreachable",
)
def test_consumer_acknowledges_nothing_while_the_database_is_down_and_resumes_when_it_returns(
    own_database, processes: Processes, transport: Transport
):
    set_available, sql = own_database
    sql_insert = (
        "INSERT INTO inventory_product (sku, name, price, stock, active, revision, created_at, updated_at) "
        "VALUES ('OUT-1', 'Outage', 5, 10, true, 1, now(), now()) RETURNING id"
    )
    (product_id,) = sql(sql_insert)[0]
    processes.start_consumer("inventory", "inventory-1")

    set_available(False)
    order_id = uuid.uuid4()
    placed = Envelope.new(
        OrderPlaced(order_id=order_id, customer_id=1, items=(OrderLine(product_id=product_id, quantity=3),), total=15),
        aggregate_id=order_id,
    )
    transport.publish([("orders", {"type": placed.type, "event": encode(placed)})])
    processes.wait_for_log("inventory-1", "DATABASE_URL is unreachable")
    # The consumer reads on after its first database error (backing off); on a loaded machine that takes seconds.
    wait_until(lambda: pending(transport, "orders", "inventory") == 1, timeout=30, what="the message to be delivered")
    time.sleep(1.5)  # several backoff rounds
    assert pending(transport, "orders", "inventory") == 1, "not acknowledged while the database is down"

    set_available(True)
    wait_until(
        lambda: pending(transport, "orders", "inventory") == 0,
        timeout=30,
        what="the consumer to resume and acknowledge",
    )
    assert sql(f"SELECT stock FROM inventory_product WHERE id = {product_id}") == [(7,)]
    assert sql(f"SELECT count(*) FROM inventory_reservation WHERE order_id = '{order_id}'") == [(1,)]
    log = processes.log("inventory-1")
    assert log.count("DATABASE_URL is unreachable") == 1
    assert "database is reachable again" in log
    assert "Traceback" not in log
