"""The `peers` scenario: Celery's pipeline (bench.peers) and this project's doing the same work
on the same servers in the same run, with the workload of the Celery baseline
(/work/shared/peers/celery-baseline/): 5,000 orders of two lines (quantity 1-3) from 4 threads
as fast as they go, then 100 orders/s for 10 s and 20 orders/s for 30 s, each drained before
the next. Both sides place the same orders (same seed, same catalog size) through the same
open-loop placer; only one side's consumers run at a time (the project's relay and consumers
stay up, idle, while Celery runs; Celery's worker is stopped before the project runs).

Figures, per side: end-to-end orders/s (first order's creation to the last notification, as
the baseline counts it), and placed -> confirmed, placed -> notified at each rate (commit
timestamps the rows carry, one host's clock). Ratios are project / Celery."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db import connection, connections
from django.db.models import Max, Min
from django.utils import timezone

from bench.fleet import ROOT, bench_env
from bench.stats import summary
from bench.world import wait_until_notified
from eventbus.redis.transport import redis_url

THREADS = 4
FULL = {"orders": 5_000, "rates": ((100, 10.0), (20, 30.0)), "warmup": 200}
QUICK = {"orders": 200, "rates": ((100, 2.0), (20, 3.0)), "warmup": 50}

Workload = list[tuple[int, list[tuple[int, int]]]]  # (customer index, [(product index, qty)])


def workload(n: int, products: int, seed: int) -> Workload:
    """`n` orders of two distinct products, quantity 1-3 each (the baseline's `_make_orders`)."""
    rng = random.Random(seed)
    return [(rng.randrange(10_000), [(p, rng.randint(1, 3)) for p in rng.sample(range(products), 2)]) for _ in range(n)]


def place(fn: Callable[[int, list[tuple[int, int]]], Any], orders: Workload, rate: float = 0, bar: Any = None) -> dict:
    """The baseline's placer: THREADS threads, thread k places orders k, k+THREADS, ...; with a
    rate, order i is due at start + i / rate (open loop). Returns the ids and the wall time."""
    n = len(orders)
    ids: list = [None] * n
    errors: list[str] = []
    gate = threading.Barrier(THREADS + 1)
    start = [0.0]

    def work(k: int) -> None:
        try:
            gate.wait()
            for i in range(k, n, THREADS):
                if rate:
                    delay = start[0] + i / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                ids[i] = fn(*orders[i]).pk
                if bar is not None:
                    bar.update(1)
        except Exception as exc:  # noqa: BLE001 - raised below, in the benchmark's thread
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    pool = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in pool:
        t.start()
    start[0] = time.perf_counter() + 0.05
    gate.wait()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start[0]
    if errors:
        raise RuntimeError(f"placing failed ({len(errors)} threads): {errors[0]}")
    return {"ids": ids, "placing_s": wall, "placing_orders_per_s": round(n / wall, 1)}


def _ms(later: Any, earlier: Any) -> float:
    return (later - earlier).total_seconds() * 1000


# --- Celery's side --------------------------------------------------------------------------------


def broker_url() -> str:
    """BENCH_PEERS_BROKER_URL, or REDIS_URL's server with database 9."""
    if os.environ.get("BENCH_PEERS_BROKER_URL"):
        return os.environ["BENCH_PEERS_BROKER_URL"]
    parts = urlsplit(redis_url())
    return urlunsplit((parts.scheme, parts.netloc, "/9", "", ""))


class CeleryPeer:
    """Celery's tables, its worker (prefork, 2 processes) and its keys, for one run."""

    def __init__(self, ctx: Any, products: int) -> None:
        self.ctx = ctx
        self.prefix = f"{ctx.key_prefix}peers:"
        os.environ["BENCH_PEERS_BROKER_URL"] = broker_url()
        os.environ["BENCH_PEERS_KEY_PREFIX"] = self.prefix
        from bench.peers import celery_app, models  # the app first: the tasks' app in this process

        self.app = celery_app.app
        self.models = models
        self.products = products
        self.worker: subprocess.Popen | None = None

    def __enter__(self) -> CeleryPeer:
        self._drop_tables()
        with connection.schema_editor() as editor:
            for model in self.models.MODELS:
                editor.create_model(model)
        self.models.Product.objects.bulk_create(
            [self.models.Product(sku=f"SKU-{i:04d}", name=f"Product {i}", stock=10**9) for i in range(self.products)]
        )
        self.product_ids = list(self.models.Product.objects.order_by("id").values_list("id", flat=True))
        env = {**bench_env(self.ctx.key_prefix), "DJANGO_SETTINGS_MODULE": "config.settings_bench"}
        env.update(BENCH_PEERS_BROKER_URL=os.environ["BENCH_PEERS_BROKER_URL"], BENCH_PEERS_KEY_PREFIX=self.prefix)
        log_dir = self.ctx.run_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "celery.log", "ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench.peers.celery_app", "worker", "--pool", "prefork",
                 "--concurrency", "2", "--hostname", f"peers-{os.getpid()}@%h", "--loglevel", "WARNING"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        if self.worker and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)  # warm shutdown: the pool's children too
            try:
                self.worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
        self._delete_keys()
        self._drop_tables()

    def _delete_keys(self) -> None:
        """The run's broker keys (queue, kombu's bindings and unacked hash), in the broker's database."""
        import redis

        client = redis.Redis.from_url(os.environ["BENCH_PEERS_BROKER_URL"])
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    def _drop_tables(self) -> None:
        with connection.cursor() as cursor:
            for model in reversed(self.models.MODELS):
                cursor.execute(f"DROP TABLE IF EXISTS {model._meta.db_table} CASCADE")

    def place(self, orders: Workload, rate: float = 0, bar: Any = None) -> dict:
        from bench.peers.tasks import place_order

        ids = self.product_ids
        return place(lambda user, items: place_order(user, [(ids[p], q) for p, q in items]), orders, rate, bar)

    def wait(self, ids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        n = self.models.Notification.objects
        while n.filter(order_id__gte=min(ids), order_id__lte=max(ids)).values("order_id").distinct().count() < len(ids):
            if self.worker and self.worker.poll() is not None:
                raise RuntimeError(f"the Celery worker exited ({self.worker.returncode}): see logs/celery.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Celery did not notify {len(ids)} orders within {timeout:g} s")
            time.sleep(0.1)

    def figures(self, ids: list[int]) -> dict:
        orders = self.models.Order.objects.filter(pk__gte=min(ids), pk__lte=max(ids))
        first = dict(
            self.models.Notification.objects.filter(order_id__gte=min(ids), order_id__lte=max(ids))
            .values_list("order_id")
            .annotate(t=Min("created_at"))
        )
        confirmed, notified, created = [], [], []
        for pk, created_at, confirmed_at in orders.values_list("pk", "created_at", "confirmed_at"):
            created.append(created_at)
            confirmed.append(_ms(confirmed_at, created_at))
            notified.append(_ms(first[pk], created_at))
        last = max(first.values())
        return _figures(len(ids), min(created), last, confirmed, notified)


def _figures(n: int, first: Any, last: Any, confirmed: list[float], notified: list[float]) -> dict:
    span = (last - first).total_seconds()
    return {
        "orders": n,
        "seconds": round(span, 2),
        "orders_per_s": round(n / span, 1),
        "placed_confirmed": summary(confirmed),
        "placed_notified": summary(notified),
    }


# --- this project's side ------------------------------------------------------------------------


def project_place(world: Any, orders: Workload, rate: float = 0, bar: Any = None) -> dict:
    from orders.services import order_place

    customers, products = world.customers, world.product_ids

    def one(user: int, items: list[tuple[int, int]]) -> Any:
        return order_place(customer=customers[user % len(customers)], items=[(products[p], q) for p, q in items])

    return place(one, orders, rate, bar)


def project_figures(ids: list) -> dict:
    from bench.scenarios import stage_latencies
    from notifications.models import Notification
    from orders.models import Order

    stages = stage_latencies(ids)
    first = Order.objects.filter(pk__in=ids).aggregate(t=Min("created_at"))["t"]
    last = Notification.objects.filter(order_id__in=ids).aggregate(t=Max("created_at"))["t"]
    return _figures(len(ids), first, last, stages["placed_confirmed"], stages["placed_notified"])


# --- the scenario -------------------------------------------------------------------------------


def peers(ctx: Any) -> dict:
    """Celery, then this project, on the baseline's workload; ratios project / Celery."""
    if connection.vendor != "postgresql":
        return {"skipped": "the peer runs on PostgreSQL only (the Celery baseline's database)"}
    assert ctx.world is not None
    spec = QUICK if ctx.quick else FULL
    products = len(ctx.world.product_ids)
    phases = [("throughput", spec["orders"], 0.0)] + [(f"{r}_per_s", int(r * s), float(r)) for r, s in spec["rates"]]
    out: dict[str, dict] = {"celery": {}, "project": {}}
    with CeleryPeer(ctx, products) as celery:
        with ctx.bar(spec["warmup"], "peers: Celery warm-up", "order") as bar:
            warm = celery.place(workload(spec["warmup"], products, seed=43), bar=bar)
            celery.wait(warm["ids"], timeout=120)  # also: the worker is up
        for i, (name, n, rate) in enumerate(phases):
            with ctx.bar(n, f"peers: Celery {name}", "order") as bar:
                placed = celery.place(workload(n, products, seed=42 + 10 * i), rate, bar)
                celery.wait(placed["ids"], timeout=600)
            out["celery"][name] = {
                **celery.figures(placed["ids"]),
                "placing_orders_per_s": placed["placing_orders_per_s"],
            }
    for i, (name, n, rate) in enumerate(phases):
        since = timezone.now()
        with ctx.bar(n, f"peers: project {name}", "order") as bar:
            placed = project_place(ctx.world, workload(n, products, seed=42 + 10 * i), rate, bar)
            wait_until_notified(ctx.world, since, n, timeout=600)
        out["project"][name] = {
            **project_figures(placed["ids"]),
            "placing_orders_per_s": placed["placing_orders_per_s"],
        }
    return {**out, "ratios": ratios(out), "workload": {"threads": THREADS, **spec}}


def ratios(out: dict) -> dict:
    """Project / Celery: above 1 is better for orders/s, below 1 is better for latencies."""
    c, p = out["celery"], out["project"]
    result: dict[str, Any] = {
        "orders_per_s": round(p["throughput"]["orders_per_s"] / c["throughput"]["orders_per_s"], 2)
    }
    for phase in (k for k in c if k != "throughput"):
        for stage in ("placed_confirmed", "placed_notified"):
            for q in ("p50", "p99"):
                mine, theirs = p[phase][stage][q], c[phase][stage][q]
                result[f"{phase}_{stage}_{q}"] = round(mine / theirs, 3) if theirs else None
    return result
