"""The benchmark scenarios of `manage.py bench`. Each returns a dict for the JSON report and
measures, in the same run, the ceiling it is compared with."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from django.db import connection, connections
from django.db.models import Count, Min
from django.utils import timezone
from rest_framework.authtoken.models import Token
from tqdm import tqdm

from bench.fleet import ROOT, Fleet
from bench.profile import Profiler
from bench.stats import summary
from bench.world import World, place_in_processes, wait_until_notified
from eventbus import registry
from eventbus.events import Envelope, encode
from eventbus.models import OutboxEvent, ProcessedEvent
from eventbus.monitor import pipeline_backlog
from eventbus.relay import Relay, vacuum_if_churned
from eventbus.transport import Transport
from inventory.models import Reservation
from notifications.models import Notification
from orders.events import OrderLine, OrderPlaced
from orders.models import Order
from orders.services import order_place


@dataclass
class Context:
    quick: bool
    run_dir: Path
    key_prefix: str
    profile: bool = False
    placing_processes: int = 2
    placing_threads: int = 8
    world: World | None = None
    fleet: Fleet | None = None

    def bar(self, total: float, desc: str, unit: str = "it") -> tqdm:
        return tqdm(total=total, desc=f"{desc:<28}", unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr)


def transport_for(prefix: str) -> Transport:
    from eventbus.transport import redis_url

    return Transport(redis_url(), prefix=prefix)


def delete_keys(prefix: str) -> None:
    transport = transport_for("")
    keys = list(transport.client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 1000):
        transport.client.delete(*keys[i : i + 1000])
    transport.close()


# --- 1. relay drain ------------------------------------------------------------------------------


def relay_drain(ctx: Context) -> dict:
    """N events waiting in the outbox; the production relay publishes them all. Ceiling: the
    same bodies XADDed in pipelines of the same size from the same client, no database."""
    n = 5_000 if ctx.quick else 100_000
    vacuum_if_churned()  # what the relay's housekeeping does: start from a vacuumed table
    prefix = f"{ctx.key_prefix}relay:"
    transport = transport_for(prefix)
    bodies = []
    with ctx.bar(n, "relay: filling the outbox", "ev") as bar:
        rows = []
        now = timezone.now()
        for _ in range(n):
            order_id = uuid.uuid4()
            envelope = Envelope.new(
                OrderPlaced(order_id=order_id, customer_id=1, items=(OrderLine(product_id=1, quantity=1),), total=10),
                aggregate_id=order_id,
            )
            body = encode(envelope)
            bodies.append(body)
            rows.append(
                OutboxEvent(
                    event_id=envelope.event_id, event_type=envelope.type, stream=envelope.stream,
                    aggregate_type=envelope.aggregate_type, aggregate_id=envelope.aggregate_id,
                    correlation_id=envelope.correlation_id, body=body, created_at=now,
                )
            )  # fmt: skip
            if len(rows) == 5000:
                OutboxEvent.objects.bulk_create(rows)
                bar.update(len(rows))
                rows = []
        OutboxEvent.objects.bulk_create(rows)
        bar.update(len(rows))

    relay = Relay(transport=transport, grace_s=0)  # these rows have no publisher but the relay
    relay.ensure_groups()
    with ctx.bar(n, "relay: draining", "ev") as bar:
        started = time.perf_counter()
        published = 0
        while published < n:
            got = relay.publish_batch()
            if not got:
                break
            published += got
            bar.update(got)
        relay_s = time.perf_counter() - started
    if published != n:
        raise RuntimeError(f"the relay published {published} of {n} events")

    # Ceiling: raw pipelined XADD of the same bodies, same batch size, same client.
    scratch = transport_for(f"{prefix}ceiling:")
    with ctx.bar(n, "relay: ceiling (raw XADD)", "ev") as bar:
        started = time.perf_counter()
        for i in range(0, n, relay.batch_size):
            chunk = bodies[i : i + relay.batch_size]
            scratch.publish([("orders", {"type": OrderPlaced.type, "event": body}) for body in chunk])
            bar.update(len(chunk))
        ceiling_s = time.perf_counter() - started

    OutboxEvent.objects.filter(created_at=now).delete()  # published rows kept by a retention setting
    vacuum_if_churned()  # the relay's housekeeping, now rather than in the middle of the next scenario
    transport.close()
    scratch.close()
    delete_keys(prefix)
    rate, ceiling = n / relay_s, n / ceiling_s
    return {
        "events": n,
        "relay_events_per_s": round(rate),
        "ceiling_xadd_per_s": round(ceiling),
        "ratio": round(rate / ceiling, 3),
    }


# --- 2. pipeline throughput ------------------------------------------------------------------------


def commit_rate(ctx: Context, threads: int, seconds: float) -> float:
    """Single-row INSERT + COMMIT per transaction, from `threads` connections at once."""
    table = "bench_commit_probe"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (id integer PRIMARY KEY, v integer)")
        cursor.execute(f"DELETE FROM {table}")
    counts = [0] * threads
    stop = time.monotonic() + seconds
    start_gate = threading.Barrier(threads)

    def work(i: int) -> None:
        from django.db import transaction

        try:
            start_gate.wait()
            n = 0
            key = i * 10_000_000
            while time.monotonic() < stop:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 1)", [key + n])
                n += 1
            counts[i] = n
        finally:
            connections.close_all()

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {table}")
    return sum(counts) / elapsed


def pipeline(ctx: Context) -> dict:
    """Orders placed as fast as the placing threads can through the real services (by default
    2 processes of 8 threads, as the web's 2 gunicorn workers place them), relay and one
    process per consumer group running; orders/s from the first placement to the last
    notification. Ceiling: single-row commits/s from the same number of connections."""
    assert ctx.world is not None
    processes, threads = ctx.placing_processes, ctx.placing_threads
    n = 300 if ctx.quick else 10_000
    since = timezone.now()
    cpu_before = _cpu_snapshot(ctx)
    profiler = _start_profiler(ctx)
    with ctx.bar(n, "pipeline: placing", "order") as bar:
        ids, placing_cpu = place_in_processes(
            ctx.world, n, processes, threads, on_placed=lambda done: bar.update(done - bar.n),
            on_started=(lambda pids: profiler.start({f"placing {i + 1}": p for i, p in enumerate(pids)}))
            if profiler else None,
        )  # fmt: skip
    with ctx.bar(n, "pipeline: waiting for the flow", "order") as bar:
        wait_until_notified(ctx.world, since, n, timeout=600, on_progress=lambda done: bar.update(done - bar.n))
    cpu_after = _cpu_snapshot(ctx)
    profile = profiler.finish() if profiler else None
    first = Order.objects.filter(customer__in=ctx.world.customers, created_at__gte=since).aggregate(t=Min("created_at"))
    last = (
        Notification.objects.filter(user__in=ctx.world.customers, created_at__gte=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    span = (last - first["t"]).total_seconds()
    ceiling = commit_rate(ctx, processes * threads, 1.0 if ctx.quick else 5.0)
    rate = len(ids) / span
    cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_after.items()}
    cpu["bench process (progress, waiting)"] = cpu.pop(_BENCH)
    cpu = {f"placing ({processes} processes x {threads} threads)": placing_cpu, **cpu}
    return {
        "orders": len(ids),
        "processes": processes,
        "threads": threads,
        "seconds": round(span, 2),
        "pipeline_orders_per_s": round(rate),
        "ceiling_commits_per_s": round(ceiling),
        "ratio": round(rate / ceiling, 3),
        "commits_per_order_at_ceiling": round(ceiling / rate, 2),
        **({"profile": str(ctx.run_dir / "profile-summary.txt")} if profile else {}),
        "cpu_ms_per_order": {name: round(1000 * seconds / len(ids), 3) for name, seconds in cpu.items()},
    }


def _start_profiler(ctx: Context) -> Profiler | None:
    """With --profile: py-spy on the relay and each consumer for the length of the scenario,
    and on each placing process once it is forked."""
    if not ctx.profile:
        return None
    assert ctx.fleet is not None
    pids = dict(ctx.fleet.pids)
    profiler = Profiler(ctx.run_dir, ROOT)
    if not profiler.start(pids):  # the placing processes are added once forked
        sys.stderr.write("--profile: py-spy is not installed; no profile taken\n")
        return None
    return profiler


_BENCH = "bench"


def _cpu_snapshot(ctx: Context) -> dict[str, float]:
    """CPU seconds used so far by each process of the scenario, the servers included (with the
    backends that exited meanwhile: the postmaster's children times hold them)."""
    assert ctx.fleet is not None
    me = psutil.Process()
    snapshot = {_BENCH: me.cpu_times().user + me.cpu_times().system}
    snapshot.update({name: ctx.fleet.cpu_seconds(name) for name in ctx.fleet.pids})
    for label, names in (("postgresql", ("postgres",)), ("redis", ("redis-server",))):
        total = 0.0
        for proc in psutil.process_iter(["name"]):
            try:
                if proc.info["name"] and proc.info["name"].startswith(names):
                    times = proc.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                pass
        snapshot[label] = total
    return snapshot


# --- 3. latency at a steady rate ----------------------------------------------------------------------


def place_at_rate(world: World, rate: float, seconds: float, bar: tqdm) -> list:
    """Open loop: order i is due at start + i / rate, whatever happened to the ones before."""
    total = int(rate * seconds)
    ids: list = []
    lock = threading.Lock()
    slot = [0]
    start = time.monotonic() + 0.2

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while True:
                with lock:
                    i = slot[0]
                    slot[0] += 1
                if i >= total:
                    return
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                order = order_place(customer=rng.choice(world.customers), items=world.lines(rng))
                with lock:
                    ids.append(order.id)
                bar.update(1)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=work, args=(i,)) for i in range(max(2, int(rate // 150) + 1))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return ids


def stage_latencies(order_ids: list) -> dict[str, list[float]]:
    """Per order, ms from its placement commit to each later commit."""
    orders = Order.objects.filter(pk__in=order_ids).values_list("pk", "created_at", "confirmed_at")
    placed, confirmed = {}, {}
    for pk, created_at, confirmed_at in orders:
        placed[pk], confirmed[pk] = created_at, confirmed_at
    reserved = dict(
        Reservation.objects.filter(order_id__in=order_ids).values_list("order_id").annotate(t=Min("created_at"))
    )
    notified = dict(Notification.objects.filter(order_id__in=order_ids).values_list("order_id", "created_at"))

    def ms(later: dict) -> list[float]:
        return [(later[o] - placed[o]).total_seconds() * 1000 for o in order_ids if later.get(o)]

    return {"placed_reserved": ms(reserved), "placed_confirmed": ms(confirmed), "placed_notified": ms(notified)}


def latency(ctx: Context) -> dict:
    """100 orders/s for 30 s, then 500 orders/s; p50/p95/p99/max of placed -> reserved,
    -> confirmed, -> notified, from the commit timestamps each step records."""
    assert ctx.world is not None
    phases = [(100, 3.0), (500, 2.0)] if ctx.quick else [(100, 30.0), (500, 30.0)]
    out: dict = {}
    samples: dict = {}
    for rate, seconds in phases:
        since = timezone.now()
        with ctx.bar(int(rate * seconds), f"latency: {rate} orders/s", "order") as bar:
            ids = place_at_rate(ctx.world, rate, seconds, bar)
        wait_until_notified(ctx.world, since, len(ids), timeout=300)
        stages = stage_latencies(ids)
        samples[rate] = stages
        out[f"{rate}_per_s"] = {stage: summary(values) for stage, values in stages.items()}
    return {"phases": out, "_samples": samples}


# --- 4. HTTP --------------------------------------------------------------------------------------


def run_loadgen(config: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", json.dumps(config)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


def tokens(world: World) -> list[str]:
    return [Token.objects.get_or_create(user=user)[0].key for user in world.customers]


def http(ctx: Context, port: int) -> dict:
    """64 keep-alive clients placing orders against gunicorn (production settings) for 30 s,
    twice: with the relay and consumers running beside it on the same two cores (as in
    production; the headline figure), and with them stopped, which is the API's own capacity to
    absorb a surge (events wait on their streams, then drain once they start again)."""
    assert ctx.world is not None
    assert ctx.fleet is not None
    seconds = 3 if ctx.quick else 30
    full = _http_run(ctx, port, seconds, "http: 64 clients, full system")
    groups = ctx.fleet.stop_pipeline()
    try:
        alone = _http_run(ctx, port, seconds, "http: 64 clients, web alone")
    finally:
        ctx.fleet.start_pipeline(groups)
    drain_started = time.monotonic()
    wait_until_notified(ctx.world, alone.pop("_since"), alone["accepted"], timeout=600)
    alone["drain_s"] = round(time.monotonic() - drain_started, 2)
    full.pop("_since")
    return {**full, "web_alone": alone}


def _http_run(ctx: Context, port: int, seconds: float, label: str) -> dict:
    assert ctx.world is not None
    assert ctx.fleet is not None
    config = {
        "host": "127.0.0.1", "port": port, "connections": 64, "duration_s": seconds,
        "tokens": tokens(ctx.world), "products": ctx.world.product_ids, "timeout_s": 30,
    }  # fmt: skip
    since = timezone.now()
    web_cpu = ctx.fleet.cpu_seconds("web")
    with ctx.bar(seconds, label, "s") as bar:
        ticker = _tick(bar, seconds)
        result = run_loadgen(config)
        ticker.set()
    web_cpu = ctx.fleet.cpu_seconds("web") - web_cpu
    created = result["statuses"].get("201", 0) + result["statuses"].get("202", 0)  # placed, or taken by the intake
    errors = sum(n for code, n in result["statuses"].items() if code not in ("201", "202"))
    errors += sum(result["errors"].values())
    if "alone" not in label:
        wait_until_notified(ctx.world, since, created, timeout=300)
    return {
        "connections": 64,
        "seconds": round(result["wall_s"], 2),
        "accepted": created,
        "http_requests_per_s": round(created / result["wall_s"]),
        "http_errors": errors,
        "statuses": result["statuses"],
        "error_kinds": result["errors"],
        "latency_ms": summary(result["latencies_ms"]),
        "loadgen_cpu_share": round(result["cpu_s"] / result["wall_s"], 3),
        "server_cpu_share": round(web_cpu / result["wall_s"], 3),
        "error_samples": result["samples"],
        "_latencies": result["latencies_ms"],
        "_since": since,
    }


def _tick(bar: tqdm, seconds: float) -> threading.Event:
    done = threading.Event()

    def run() -> None:
        for _ in range(int(seconds)):
            if done.wait(1):
                return
            bar.update(1)

    threading.Thread(target=run, daemon=True).start()
    return done


# --- 5. burst ---------------------------------------------------------------------------------------


def burst(ctx: Context, port: int) -> dict:
    """10,000 orders offered as fast as 1,000 concurrent connections can send them. Each is
    accepted (201, or 202 from the intake) or refused cleanly (429/503 with JSON); every accepted
    one must settle."""
    assert ctx.world is not None
    total, conns = (1_000, 200) if ctx.quick else (10_000, 1_000)
    config = {
        "host": "127.0.0.1", "port": port, "connections": conns, "total": total,
        "tokens": tokens(ctx.world), "products": ctx.world.product_ids, "timeout_s": 60,
    }  # fmt: skip
    customers = [c.pk for c in ctx.world.customers]
    since = timezone.now()
    peak = {"outbox": 0, "streams": 0}
    stop = threading.Event()

    def sample() -> None:
        try:
            while not stop.wait(0.25):
                backlog = pipeline_backlog()
                peak["outbox"] = max(peak["outbox"], backlog.outbox)
                peak["streams"] = max(peak["streams"], sum(g.pending + g.lag for g in backlog.groups))
        finally:
            connections.close_all()

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ctx.bar(total, f"burst: {conns} connections", "req") as bar:
        watcher = _watch_orders(customers, since, bar)
        result = run_loadgen(config)
        watcher.set()
    offered_at = time.monotonic()
    accepted = result["statuses"].get("201", 0) + result["statuses"].get("202", 0)
    refused = result["statuses"].get("429", 0) + result["statuses"].get("503", 0)
    errors_5xx = sum(n for code, n in result["statuses"].items() if code.startswith("5") and code != "503")
    drained = True
    try:
        with ctx.bar(accepted, "burst: draining", "order") as bar:
            wait_until_notified(
                ctx.world, since, accepted, timeout=300, on_progress=lambda done: bar.update(done - bar.n)
            )
    except RuntimeError:
        drained = False
    drain_s = time.monotonic() - offered_at
    stop.set()
    sampler.join()
    in_db = Order.objects.filter(customer_id__in=customers, created_at__gte=since)
    final = in_db.exclude(status=Order.Status.PENDING).count()
    return {
        "offered": total,
        "connections": conns,
        "accepted": accepted,
        "refused": refused,
        "errors_5xx": errors_5xx,
        "other_errors": dict(result["errors"]),
        "orders_in_database": in_db.count(),
        "lost": max(accepted - final, 0),
        "drained": drained,
        "offer_s": round(result["wall_s"], 2),
        "drain_s": round(drain_s, 2),
        "peak_outbox": peak["outbox"],
        "peak_stream_backlog": peak["streams"],
        "latency_ms": summary(result["latencies_ms"]),
        "loadgen_cpu_share": round(result["cpu_s"] / result["wall_s"], 3),
        "error_samples": result["samples"],
        "_latencies": result["latencies_ms"],
    }


def _watch_orders(customers: list[int], since: dt.datetime, bar: tqdm) -> threading.Event:
    done = threading.Event()

    def run() -> None:
        try:
            while not done.wait(0.5):
                n = Order.objects.filter(customer_id__in=customers, created_at__gte=since).count()
                bar.update(max(n - bar.n, 0))
        finally:
            connections.close_all()

    threading.Thread(target=run, daemon=True).start()
    return done


# --- 6. memory ---------------------------------------------------------------------------------------


def memory(ctx: Context) -> dict:
    """Resident memory of each consumer after its group handled FIRST events and after LAST."""
    assert ctx.world is not None
    assert ctx.fleet is not None
    first, last = (500, 3_000) if ctx.quick else (1_000, 100_000)
    groups = registry.groups()
    since = timezone.now()

    def handled() -> dict[str, int]:
        counts = dict(
            ProcessedEvent.objects.filter(processed_at__gte=since)
            .values_list("consumer_group")
            .annotate(n=Count("id"))
            .order_by()
        )
        return {g: counts.get(g, 0) for g in groups}

    rss_first: dict[str, float] = {}
    stop = threading.Event()
    placers = [threading.Thread(target=_place_until, args=(ctx.world, stop, seed)) for seed in range(3)]
    for placer in placers:
        placer.start()
    try:
        with ctx.bar(last, "memory: events per consumer", "ev") as bar:
            while True:
                ctx.fleet.check_alive()
                counts = handled()
                for g in groups:
                    if g not in rss_first and counts[g] >= first:
                        rss_first[g] = ctx.fleet.rss_mb(g)
                low = min(counts.values())
                bar.update(max(low - bar.n, 0))
                if low >= last:
                    break
                time.sleep(0.5)
    finally:
        stop.set()
        for placer in placers:
            placer.join()
    rss_last = {g: ctx.fleet.rss_mb(g) for g in groups}
    growth = {g: round(rss_last[g] - rss_first[g], 1) for g in groups}
    return {
        "events_first": first,
        "events_last": last,
        "rss_mb_first": {g: round(v, 1) for g, v in rss_first.items()},
        "rss_mb_last": {g: round(v, 1) for g, v in rss_last.items()},
        "growth_mb": growth,
        "consumer_rss_growth_mb": max(growth.values()),
    }


def _place_until(world: World, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    try:
        while not stop.is_set():
            order_place(customer=rng.choice(world.customers), items=world.lines(rng))
    finally:
        connections.close_all()


SCENARIOS: dict[str, Callable[..., dict]] = {
    "relay": relay_drain,
    "pipeline": pipeline,
    "latency": latency,
    "http": http,
    "burst": burst,
    "memory": memory,
}

__all__ = ["SCENARIOS", "Context"]
