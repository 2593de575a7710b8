"""Clean shutdown: SIGTERM or SIGINT finishes the message in hand, acknowledges it and exits 0
within a few seconds; settings a user can get wrong give one line, not a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from django.db import transaction

from eventbus.messages import registry
from eventbus.redis.transport import Transport
from eventbus.runtime.relay import Relay
from inventory.models import Product, Reservation
from orders.services import order_place
from tests.factories import ProductFactory, UserFactory
from tests.processes import ROOT, Processes, database_url, pending, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_every_long_running_command_exits_0_within_seconds_when_idle(processes: Processes, sig: int):
    processes.start_relay()
    for group in registry.groups():
        processes.start_consumer(group, f"{group}-1", "--block-ms", "60000")
    for name in ["relay", *(f"{g}-1" for g in registry.groups())]:
        started = time.monotonic()
        assert processes.stop(name, sig, timeout=5) == 0, processes.log(name)
        assert time.monotonic() - started < 3, f"{name} took too long to stop"
        assert "stopped" in processes.log(name)


def test_sigterm_finishes_the_message_in_hand_acknowledges_it_and_exits_0(
    processes: Processes, transport: Transport, settings
):
    # The placement below is published by the in-test relay while the lock is held, not on
    # commit (which comes only after the lock is released).
    settings.EVENTBUS = {**settings.EVENTBUS, "PUBLISH_ON_COMMIT": False}
    product = ProductFactory(stock=5)
    processes.start_consumer("inventory", "inventory-1")

    with transaction.atomic():
        # Hold the product row (PostgreSQL) or the write lock (SQLite), then publish: the
        # consumer takes the message and blocks mid-transaction with it in hand.
        Product.objects.select_for_update().get(pk=product.pk)
        order = order_place(customer=UserFactory(), items=[(product.pk, 2)])
        Relay(transport=transport).run(once=True)
        wait_until(lambda: pending(transport, "orders", "inventory") == 1, timeout=10, what="the consumer to take it")
        processes.procs["inventory-1"].send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert processes.procs["inventory-1"].poll() is None, "it waits for the message in hand"
    assert processes.procs["inventory-1"].wait(timeout=10) == 0
    assert Reservation.objects.filter(order_id=order.id).count() == 1
    assert Product.objects.get(pk=product.pk).stock == 3
    assert pending(transport, "orders", "inventory") == 0, "acknowledged before exiting"


# What production sets besides the setting under test, so only that one has anything to say.
PRODUCTION_ENV = {
    "PATH": "/usr/bin:/bin",
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "SECRET_KEY": "a-key-for-these-commands-only-" + "0123456789abcdef" * 3,
    "EMAIL_URL": "dummymail://",
}


def run_command(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**PRODUCTION_ENV, **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL must start with redis://"),
        ({"REDIS_URL": "redis+cluster://"}, "REDIS_URL names a Redis Cluster but not as host:port[,host:port...]"),
        ({"DATABASE_URL": "mysql://root@localhost/shop"}, "DATABASE_URL must start with postgres://"),
        (
            {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1/0"},
            "DATABASE_URL is unreachable (postgres://nobody@127.0.0.1:1/none)",
        ),
    ],
    ids=["bad-redis-scheme", "redis-cluster", "bad-database-scheme", "unreachable-database"],
)
def test_a_setting_the_user_got_wrong_gives_one_line_not_a_traceback(env: dict[str, str], expected: str):
    result = run_command("check_invariants", **env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis+cluster://127.0.0.1:1"], ids=["server", "cluster"])
def test_an_unreachable_redis_gives_one_line_from_a_one_shot_command(url: str):
    result = run_command("check_invariants", "--wait", "1", DATABASE_URL=database_url(), REDIS_URL=url)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"REDIS_URL is unreachable ({url})")


def test_a_bad_consumer_argument_gives_a_usage_line_not_a_traceback():
    result = run_command("consume_inventory", "--batch-size", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--batch-size: 0 is out of range: use 1..10000" in result.stderr
