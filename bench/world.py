"""The data a benchmark works on: its own products (plenty of stock) and customers, created
through the real services, plus helpers to place orders and wait for the pipeline."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.utils import timezone

from config.errors import DomainError
from inventory.services import product_create
from notifications.models import Notification
from orders.desk import Desk, Ticket
from orders.models import CatalogProduct, Order
from orders.placing import PlaceRequest, place_committed
from orders.services import order_place


@dataclass
class World:
    run_id: str
    product_ids: list[int]
    customers: list
    rng: random.Random = field(default_factory=lambda: random.Random(42))

    def lines(self, rng: random.Random | None = None) -> list[tuple[int, int]]:
        rng = rng or self.rng
        return [(p, rng.randint(1, 3)) for p in rng.sample(self.product_ids, rng.randint(1, 3))]

    def request(self, rng: random.Random) -> PlaceRequest:
        """One order of a random customer, for the placing path itself (place_committed, the desk)."""
        return PlaceRequest(rng.choice(self.customers).pk, tuple(self.lines(rng)))


def build_world(*, products: int = 50, customers: int = 50, stock: int = 900_000_000) -> World:
    run_id = uuid.uuid4().hex[:8]
    product_ids = [
        product_create(sku=f"bench-{run_id}-{i}", name=f"Bench product {i}", price=Decimal("9.90"), stock=stock).pk
        for i in range(products)
    ]
    User = get_user_model()
    users = [
        User.objects.create(username=f"bench-{run_id}-{i}", email=f"bench-{run_id}-{i}@example.com")
        for i in range(customers)
    ]
    return World(run_id=run_id, product_ids=product_ids, customers=users)


def bulk_customers(world: World, n: int, label: str) -> list[tuple[int, str]]:
    """`n` more customers of the world's run, each with an API token, created with bulk inserts
    (10,000 in seconds; users as `build_world` makes them, without a usable password). They are
    not added to `world.customers`, which the other scenarios place orders for. Returns
    (user id, token key) per customer, in creation order."""
    from rest_framework.authtoken.models import Token

    User = get_user_model()
    users = User.objects.bulk_create(
        [
            User(username=f"bench-{world.run_id}-{label}-{i}", email=f"bench-{world.run_id}-{label}-{i}@example.com")
            for i in range(n)
        ],
        batch_size=2_000,
    )
    tokens = Token.objects.bulk_create([Token(key=Token.generate_key(), user=u) for u in users], batch_size=2_000)
    return [(token.user.pk, token.key) for token in tokens]


def wait_for_catalog(world: World, timeout: float = 60) -> None:
    """Orders can be placed once the orders consumer has applied the ProductChanged events."""
    deadline = time.monotonic() + timeout
    while CatalogProduct.objects.filter(product_id__in=world.product_ids).count() < len(world.product_ids):
        if time.monotonic() > deadline:
            raise RuntimeError("the orders consumer did not sync the bench catalog: is it running?")
        time.sleep(0.05)


def warm_up(world: World, orders: int) -> None:
    """Place `orders` orders through the running pipeline and wait for them, then ANALYZE.

    A benchmark on a new database would otherwise measure a state no running system is in:
    each connection caches the plans it made while the tables were empty (the foreign-key
    check of every order line then scans the whole orders table as it grows: 95 million rows
    read for 10,000 orders) until fresh statistics invalidate them, which autovacuum provides
    on a production server and nothing does on one without it (CI's)."""
    since = timezone.now()
    place_in_threads(world, orders, 4)
    wait_until_notified(world, since, orders, timeout=300)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def place_in_threads(
    world: World, total: int, threads: int, on_placed: Callable[[], None] | None = None, seed: int = 0
) -> list:
    """Place `total` orders as fast as `threads` threads can; returns their ids."""
    ids: list = []
    lock = threading.Lock()
    remaining = [total]

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                order = order_place(customer=rng.choice(world.customers), items=world.lines(rng))
                with lock:
                    ids.append(order.id)
                if on_placed:
                    on_placed()
        finally:
            connections.close_all()

    pool = [threading.Thread(target=work, args=(seed + i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return ids


def place_in_batches(
    world: World, total: int, batch: int = 100, on_placed: Callable[[int], None] | None = None, seed: int = 0
) -> list:
    """Place `total` orders from this thread, `batch` to a transaction, as the web's order desk
    places what a crowd sends (orders.placing.place_committed: its group commit). For scenarios
    that need many orders cheaply and measure something else (the consumers' memory): a
    fraction of the CPU per order of one transaction each. `on_placed(n)` after each batch, with
    the number placed so far. Returns the order ids."""
    rng = random.Random(seed)
    ids: list = []
    while len(ids) < total:
        requests = [world.request(rng) for _ in range(min(batch, total - len(ids)))]
        for outcome in place_committed(requests):
            if isinstance(outcome, DomainError):  # the bench's world never earns a refusal
                raise RuntimeError(f"an order was refused: {outcome}")
            ids.append(outcome.id)
        if on_placed:
            on_placed(len(ids))
    return ids


def place_in_processes(
    world: World,
    total: int,
    processes: int,
    threads: int,
    on_placed: Callable[[int], None] | None = None,
    on_started: Callable[[list[int]], object] | None = None,
) -> tuple[list, float]:
    """Place `total` orders from `processes` forked processes with `threads` customers at once
    at each one's order desk (place_at_desk), the way the web's worker processes place them (one
    Python process alone is bound by its GIL before the machine is). Returns the order ids and
    the CPU seconds the placing processes used. `on_placed(n)` is called with the number placed
    so far, about ten times a second; `on_started(pids)` once the processes run."""
    connections.close_all()  # no connection may be shared across the fork
    context = multiprocessing.get_context("fork")
    placed = context.Value("i", 0)
    results = context.Queue()
    shares = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
    workers = [
        context.Process(target=_placer, args=(world, share, threads, i, placed, results), daemon=True)
        for i, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    if on_started:
        on_started([w.pid for w in workers])
    ids: list = []
    cpu = 0.0
    pending = len(workers)
    while pending:
        try:
            worker_ids, worker_cpu, error = results.get(timeout=0.1)
        except queue.Empty:  # report progress, check nobody died
            if on_placed:
                on_placed(placed.value)
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError("a placing process died") from None
            continue
        if error:
            raise RuntimeError(f"a placing process failed: {error}")
        ids += worker_ids
        cpu += worker_cpu
        pending -= 1
    for worker in workers:
        worker.join()
    if on_placed:
        on_placed(placed.value)
    return ids, cpu


def place_at_desk(
    world: World, total: int, clients: int, on_placed: Callable[[], None] | None = None, seed: int = 0
) -> list:
    """Place `total` orders as one of the web's workers places them: `clients` customers at once,
    each placing its next order as soon as the last was answered, at this process's order desk
    (orders.desk: what arrives together is committed in one transaction, each answered 201 once
    it committed). Only the HTTP parsing of the real intake is left out. A customer waits up to
    a minute (a benchmark's patient client, where the web refuses after INTAKE_DEADLINE_S); any
    answer but 201 fails the run. Returns the order ids."""
    deadline_s = 60.0

    async def run() -> list:
        desk = Desk()
        desk.connect()
        ids: list = []
        left = [total]

        async def customer(k: int) -> None:
            rng = random.Random(seed + k)
            while left[0] > 0:
                left[0] -= 1
                answer = await desk.place(Ticket(world.request(rng), time.monotonic() + deadline_s, lambda: True))
                status, body, _ = answer if answer is not None else (0, b"", {})
                if status != 201:
                    raise RuntimeError(f"the desk answered {status}: {body[:200]!r}")
                ids.append(uuid.UUID(json.loads(body)["id"]))
                if on_placed:
                    on_placed()

        try:
            await asyncio.gather(*(customer(k) for k in range(clients)))
        finally:
            await desk.close()
        return ids

    return asyncio.run(run())


def _placer(world: World, total: int, threads: int, index: int, placed: Any, results: Any) -> None:
    error = ""
    ids: list = []
    try:

        def count() -> None:
            with placed.get_lock():
                placed.value += 1

        world.rng = random.Random(index)
        ids = place_at_desk(world, total, threads, on_placed=count, seed=index * 1000)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        error = f"{type(exc).__name__}: {exc}"
    times = os.times()
    results.put((ids, times.user + times.system, error))


def notified_since(world: World, since: dt.datetime) -> int:
    return Notification.objects.filter(user_id__in=[c.pk for c in world.customers], created_at__gte=since).count()


def wait_until_notified(
    world: World, since: dt.datetime, expected: int, *, timeout: float, on_progress: Callable[[int], None] | None = None
) -> None:
    """Wait until `expected` orders placed since `since` have their notification (the last
    step of the flow)."""
    deadline = time.monotonic() + timeout
    while True:
        done = notified_since(world, since)
        if on_progress:
            on_progress(done)
        if done >= expected:
            return
        if time.monotonic() > deadline:
            pending = Order.objects.filter(customer__in=world.customers, status=Order.Status.PENDING).count()
            raise RuntimeError(f"only {done}/{expected} orders notified after {timeout:g} s ({pending} still pending)")
        time.sleep(0.1)
