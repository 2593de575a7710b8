"""The benchmark scenarios of `manage.py bench`. Each returns a dict for the JSON report and
measures, in the same run, the ceiling it is compared with."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings
from django.db import connection, connections
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone
from rest_framework.authtoken.models import Token
from tqdm import tqdm

from bench.ceiling import against_database
from bench.email import email
from bench.fleet import ROOT, Fleet, server_cpu_seconds
from bench.hops import hop_table
from bench.peers.scenario import peers
from bench.profile import Profiler
from bench.stats import summary
from bench.world import World, bulk_customers, place_in_batches, place_in_processes, wait_until_notified
from eventbus.messages import registry
from eventbus.messages.events import Envelope, encode
from eventbus.models import OutboxEvent
from eventbus.redis.transport import Transport, get_transport
from eventbus.runtime import heartbeats, partitions
from eventbus.runtime.leases import share
from eventbus.runtime.monitor import pipeline_backlog
from eventbus.runtime.relay import Relay
from eventbus.store.outbox_table import vacuum_if_churned
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
    scale_on: str = "both"  # the scale scenario: "redis", "cluster" or both
    scale_consumers: tuple[int, ...] = (1, 2, 4)  # its consumers per group
    world: World | None = None
    fleet: Fleet | None = None

    def bar(self, total: float, desc: str, unit: str = "it") -> tqdm:
        return tqdm(total=total, desc=f"{desc:<28}", unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr)


def transport_for(prefix: str) -> Transport:
    """A transport of the benchmark's own, as production would build it (WAIT included)."""
    from eventbus.redis.transport import redis_url

    conf = settings.EVENTBUS
    return Transport(
        redis_url(), prefix=prefix, wait_replicas=conf["WAIT_REPLICAS"], wait_timeout_ms=conf["WAIT_TIMEOUT_MS"]
    )


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
    """Orders placed as fast as the placing processes can through the real services (by default
    2 processes with 8 customers at once at each one's order desk, as the web's 2 gunicorn
    workers place them: group commit), relay and one
    process per consumer group running; orders/s from the first placement to the last
    notification. Ceiling: single-row commits/s from the same number of connections; then the
    database's own ceiling for this design's writes (bench.ceiling, pgbench)."""
    since = timezone.now()
    result = _pipeline_run(ctx, 300 if ctx.quick else 10_000)
    return {**result, "database": against_database(result, since, quick=ctx.quick)}


def _pipeline_run(ctx: Context, n: int, *, ceiling: bool = True) -> dict:
    """`n` orders through the pipeline scenario's placing processes, to the last notification;
    with `ceiling`, then the database's commit rate from as many threads (5 s) and the ratio."""
    assert ctx.world is not None
    processes, threads = ctx.placing_processes, ctx.placing_threads
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
    rate = len(ids) / span
    cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_after.items()}
    cpu["bench process (progress, waiting)"] = cpu.pop(_BENCH)
    cpu = {f"placing ({processes} processes x {threads} customers at a desk)": placing_cpu, **cpu}
    return {
        "orders": len(ids),
        "processes": processes,
        "threads": threads,
        "seconds": round(span, 2),
        "pipeline_orders_per_s": round(rate),
        **(_against_ceiling(ctx, rate, processes * threads) if ceiling else {}),
        **({"profile": str(ctx.run_dir / "profile-summary.txt")} if profile else {}),
        "cpu_ms_per_order": {name: round(1000 * seconds / len(ids), 3) for name, seconds in cpu.items()},
    }


def _against_ceiling(ctx: Context, rate: float, threads: int) -> dict:
    ceiling = commit_rate(ctx, threads, 1.0 if ctx.quick else 5.0)
    return {
        "ceiling_commits_per_s": round(ceiling),
        "ratio": round(rate / ceiling, 3),
        "commits_per_order_at_ceiling": round(ceiling / rate, 2),
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
    snapshot.update(server_cpu_seconds())
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
    """20 orders/s for 15 s, 100 orders/s for 30 s, then 500 orders/s for 20 s; p50/p95/p99/max
    of placed -> reserved, -> confirmed, -> notified, from the commit timestamps each step
    records, and per hop (bench.hops)."""
    assert ctx.world is not None
    phases = [(20, 2.0), (100, 3.0), (500, 2.0)] if ctx.quick else [(20, 15.0), (100, 30.0), (500, 20.0)]
    out: dict = {}
    samples: dict = {}
    hops: dict = {}
    for rate, seconds in phases:
        since = timezone.now()
        with ctx.bar(int(rate * seconds), f"latency: {rate} orders/s", "order") as bar:
            ids = place_at_rate(ctx.world, rate, seconds, bar)
        wait_until_notified(ctx.world, since, len(ids), timeout=300)
        stages = stage_latencies(ids)
        samples[rate] = stages
        out[f"{rate}_per_s"] = {stage: summary(values) for stage, values in stages.items()}
        hops[f"{rate}_per_s"] = hop_table(ids)  # bench.hops: where each millisecond goes
    return {"phases": out, "hops": hops, "_samples": samples}


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
    """64 keep-alive clients placing orders against gunicorn (production settings) for 20 s,
    twice: with the relay and consumers running beside it on the same two cores (as in
    production; the headline figure), and with them stopped, which is the API's own capacity to
    absorb a surge (events wait on their streams, then drain once they start again)."""
    assert ctx.world is not None
    assert ctx.fleet is not None
    seconds = 3 if ctx.quick else 20  # 20 s: ~10,000 requests with the pipeline, ~30,000 without
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
    """Resident memory of each consumer after its group handled FIRST events and after LAST.
    The orders are placed as the web's desk places a crowd's, 100 to a transaction (the
    consumers are measured here, not the placing: one transaction per order made placing most
    of the scenario's CPU and time), MEMORY_CHUNK at a time, the next chunk while every group is
    within MEMORY_AHEAD chunks of the orders placed (each group handles one event per order:
    LAST orders in all); the scenario ends when every order placed was notified (no backlog is
    left for the next one)."""
    assert ctx.world is not None
    assert ctx.fleet is not None
    fleet, world = ctx.fleet, ctx.world
    first, last = (300, 1_500) if ctx.quick else (1_000, 100_000)
    groups = registry.groups()
    since = timezone.now()
    transport = get_transport()

    def processed() -> Counter[str]:
        """Events handled so far by each group's consumers, from their heartbeats (every 2 s).
        Counting the inbox rows instead cost the system under test up to a core by the end:
        300,000 rows aggregated several times a second."""
        counts: Counter[str] = Counter()
        for beat in heartbeats.live_processes(transport):
            if beat.role == "consumer":
                counts.update(dict.fromkeys(beat.groups, beat.processed))
        return counts

    before = processed()

    def handled() -> dict[str, int]:
        now = processed()
        return {g: now[g] - before[g] for g in groups}

    rss_first: dict[str, float] = {}
    placed = 0
    with ctx.bar(last, "memory: events per consumer", "ev") as bar:

        def look(_: int = 0) -> int:
            """Note each group's RSS as it passes FIRST; the fewest events any group handled."""
            fleet.check_alive()
            counts = handled()
            for g in groups:
                if g not in rss_first and counts[g] >= first:
                    rss_first[g] = fleet.rss_mb(g)
            low = min(counts.values())
            bar.update(max(low - bar.n, 0))
            return low

        low, chunk = 0, min(MEMORY_CHUNK, last)
        while low < last:
            # Each order is one event for every group: `last` orders are enough.
            if placed < last and placed - low < MEMORY_AHEAD * chunk:
                ids = place_in_batches(world, min(chunk, last - placed), on_placed=look, seed=placed)
                placed += len(ids)
            else:
                time.sleep(0.5)
            low = look()
    wait_until_notified(world, since, placed, timeout=300)  # the last chunk too: no backlog for the next
    rss_last = {g: fleet.rss_mb(g) for g in groups}
    growth = {g: round(rss_last[g] - rss_first[g], 1) for g in groups}
    return {
        "events_first": first,
        "events_last": last,
        "rss_mb_first": {g: round(v, 1) for g, v in rss_first.items()},
        "rss_mb_last": {g: round(v, 1) for g, v in rss_last.items()},
        "growth_mb": growth,
        "consumer_rss_growth_mb": max(growth.values()),
    }


MEMORY_CHUNK = 2_000  # orders placed at once by the memory scenario
MEMORY_AHEAD = 3  # chunks placed ahead of the slowest group (its count comes from beats 2 s apart)


# --- 7. spike ---------------------------------------------------------------------------------------

SPIKE_PATIENCE_S = 30.0  # how long a customer waits for an answer before giving up
SPIKE_ARRIVAL_S = 1.0  # every customer's connect() starts within this
SPIKE_RETRY_AFTER_CAP_S = 5.0  # the longest Retry-After a staying customer honours
SPIKE_DRAIN_CAP_S = 120.0
CEILING_CLIENTS, CEILING_PROCESSES = 50, 2


def spike(ctx: Context, port: int) -> dict:
    """10,000 customers (--quick: 300), each with its own token and its own TCP connection, all
    connecting within about a second and sending one order each, patient for 30 s; then the
    first 2,000 (--quick: 50) stay for 60 s (--quick: 5 s), ordering again and again on one
    keep-alive connection and retrying a "come back later" with the same Idempotency-Key
    (bench/spike.py describes the load generator and its outcomes). The web runs as deployed
    (`Fleet.start_web_as_deployed`), warmed up and idle when the spike starts, the relay and
    consumers beside it.

    Then it waits for the pipeline to drain (no order of these customers pending, the count of
    their orders steady), at most 120 s after the load ended, and checks every order against
    what the customers were told. Figures, besides each phase's (see `Spike.report`):

    - `orders.phaseN_created`: orders in the database for phase N's keys, after the drain;
      `phaseN_told_taken`: keys the customers were told were taken; `phaseN_ghost`: created
      minus told taken (orders placed for customers who never heard so, having given up or lost
      the connection; negative if customers were told of orders that do not exist);
    - `orders.lost`: keys told taken with no order; `duplicate_orders`: orders beyond the first
      for one customer and key (must be 0); `wrong_id`: keys told taken whose order has another
      id than the one in the answer; `unknown`: orders of these customers for no key they sent;
      `still_pending`: orders not final when the wait ended;
    - `drain.drain_s`: seconds from the last request's end (answer or give-up) to the last of
      these orders reaching its final status (its `updated_at`), 0 if that came first;
      `drained`: no order pending when the wait ended;
    - `ceiling.xadd_per_s`: raw XADDs per second the same Redis takes from 50 concurrent
      clients (redis-py asyncio, 2 processes x 25 connections, ONE XADD PER CALL, no
      pipelining) to a throwaway stream under the benchmark's key prefix, deleted afterwards;
    - `loadgen_cpu_s`: the load generator's CPU seconds (user + system), both phases;
      `web.cpu_s`: the web's (gunicorn and its workers) over the same time; `machine`: how busy
      the whole machine was meanwhile (other work on a shared machine shows there) and its
      1-minute load average before and after."""
    assert ctx.world is not None
    assert ctx.fleet is not None
    n, stay, stay_s = (300, 50, 5.0) if ctx.quick else (10_000, 2_000, 60.0)
    customers = bulk_customers(ctx.world, n, "spike")
    user_ids = [pk for pk, _ in customers]
    _warm_web(ctx, port, tokens(ctx.world)[0], ctx.world.product_ids[0])
    config_path = ctx.run_dir / "spike-config.json"  # the tokens, deleted once read
    config_path.write_text(
        json.dumps({
            "host": "127.0.0.1", "port": port, "tokens": [key for _, key in customers],
            "products": ctx.world.product_ids, "arrival_s": SPIKE_ARRIVAL_S, "patience_s": SPIKE_PATIENCE_S,
            "stay": stay, "stay_s": stay_s, "retry_after_cap_s": SPIKE_RETRY_AFTER_CAP_S,
        })
    )  # fmt: skip
    since = timezone.now()
    web_cpu = ctx.fleet.cpu_seconds("web")
    web_processes = 1 + ctx.fleet.children("web")
    load_before, machine_before = os.getloadavg()[0], psutil.cpu_times()
    expected_s = SPIKE_ARRIVAL_S + SPIKE_PATIENCE_S + stay_s
    try:
        with ctx.bar(expected_s, f"spike: {n:,} customers", "s") as bar:
            ticker = _tick(bar, expected_s)
            result = _run_module("bench.spike", str(config_path))
            ticker.set()
    finally:
        config_path.unlink(missing_ok=True)
    web_cpu = ctx.fleet.cpu_seconds("web") - web_cpu
    machine = _machine_busy(machine_before, psutil.cpu_times())
    machine.update(loadavg_1m_before=round(load_before, 2), loadavg_1m_after=round(os.getloadavg()[0], 2))
    keys = result.pop("keys")
    told = {(user_ids[c], key): (phase, order_id) for c, phase, key, order_id, _ in keys}
    taken = sum(1 for _, order_id in told.values() if order_id)

    orders = Order.objects.filter(customer_id__gte=min(user_ids), customer_id__lte=max(user_ids), created_at__gte=since)
    with ctx.bar(taken, "spike: draining", "order") as bar:
        waited_s = _wait_for_spike_drain(orders, taken, SPIKE_DRAIN_CAP_S, 2.0 if ctx.quick else 5.0, bar)
    checked = _check_spike_orders(orders, told)
    last_final = orders.exclude(status=Order.Status.PENDING).aggregate(t=Max("updated_at"))["t"]
    drain_s = max(last_final.timestamp() - result["last_request_end_wall"], 0.0) if last_final else None
    ceiling = _xadd_ceiling(ctx, 1.0 if ctx.quick else 5.0)

    phases = {}
    latencies = {}
    for phase in ("phase1", "phase2"):
        latencies[phase] = result[phase].pop("_latencies_ms")
        phases[phase] = result[phase]
    phases["phase2"]["stay_s"] = stay_s
    return {
        "customers": n,
        "arrival_s": SPIKE_ARRIVAL_S,
        "patience_s": SPIKE_PATIENCE_S,
        "web": {
            "command": ctx.fleet.procfile_command("web"),
            "processes": web_processes,
            "cpu_s": round(web_cpu, 1),
        },
        **phases,
        "orders": checked,
        "drain": {
            "drained": checked["still_pending"] == 0,
            "drain_s": round(drain_s, 2) if drain_s is not None else None,
            "waited_s": round(waited_s, 1),
            "cap_s": SPIKE_DRAIN_CAP_S,
        },
        "ceiling": ceiling,
        "loadgen_cpu_s": result["cpu_s"],
        "machine": machine,
        "_latencies": latencies,
    }


def _machine_busy(before: Any, after: Any) -> dict[str, float]:
    """CPU seconds the whole machine (every core, every process: this benchmark's and anyone
    else's) spent busy between two `psutil.cpu_times()`, and that as a share of its cores."""
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
    total = sum(after) - sum(before)
    return {"cpu_busy_s": round(total - idle, 1), "cpu_busy_share": round((total - idle) / total, 3) if total else 0.0}


def _warm_web(ctx: Context, port: int, token: str, product: int, *, orders: int = 16, timeout: float = 60) -> None:
    """Bring the web to where a shop's web is when a spike hits it: ready (`/healthz` answers
    200), every worker past its first requests (the first one, which sets up Django's and DRF's
    lazy parts, takes most of a second here), and idle again (its CPU quiet for a second).
    Places `orders` orders (8 at a time) as one of the world's customers, not the spike's."""
    assert ctx.fleet is not None
    deadline = time.monotonic() + timeout

    def call(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
        connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    while True:
        ctx.fleet.check_alive()
        try:
            if call("GET", "/healthz") == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the web did not answer /healthz with 200 within {timeout:g} s")
        time.sleep(0.2)
    body = json.dumps({"items": [{"product_id": product, "quantity": 1}]}).encode()
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: call("POST", "/api/orders/", body, headers), range(orders)))
    if any(status not in (201, 202) for status in statuses):
        raise RuntimeError(f"warming the web up: POST /api/orders/ answered {statuses}")
    before = ctx.fleet.cpu_seconds("web")
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = ctx.fleet.cpu_seconds("web")
        if now - before < 0.05:
            return
        before = now


def _run_module(module: str, argument: str) -> dict:
    """`python -m module argument` from the project's root; its standard output as JSON."""
    done = subprocess.run(
        [sys.executable, "-m", module, argument], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _wait_for_spike_drain(orders: QuerySet, taken: int, cap_s: float, quiet_s: float, bar: tqdm) -> float:
    """Wait until none of `orders` is pending, there are at least `taken` of them (an answer
    may come before its order's row), and their count has not changed for `quiet_s` (requests
    whose customers gave up may still be in the web); at most `cap_s`. Returns the seconds
    waited."""
    started = time.monotonic()
    count, steady_since = -1, started
    while True:
        now = time.monotonic()
        figures = orders.aggregate(n=Count("id"), pending=Count("id", filter=Q(status=Order.Status.PENDING)))
        if figures["n"] != count:
            count, steady_since = figures["n"], now
        bar.update(max(min(count - figures["pending"], bar.total) - bar.n, 0))
        if figures["pending"] == 0 and count >= taken and now - steady_since >= quiet_s:
            return now - started
        if now - started >= cap_s:
            return now - started
        time.sleep(0.25)


def _check_spike_orders(orders: QuerySet, told: dict[tuple[int, str], tuple[int, str | None]]) -> dict:
    """The orders in the database against what each customer was told, per key (see `spike`)."""
    rows: dict[tuple[int, str], list[str]] = {}
    statuses: Counter[str] = Counter()
    for customer_id, key, order_id, status in orders.values_list("customer_id", "idempotency_key", "id", "status"):
        rows.setdefault((customer_id, key), []).append(str(order_id))
        statuses[status] += 1
    out = {f"phase{p}_{what}": 0 for p in (1, 2) for what in ("created", "told_taken")}
    lost = wrong_id = unknown = 0
    for customer_key, ids in rows.items():
        if customer_key not in told:
            unknown += len(ids)
        else:
            out[f"phase{told[customer_key][0]}_created"] += len(ids)
    for customer_key, (phase, order_id) in told.items():
        if order_id is None:
            continue
        out[f"phase{phase}_told_taken"] += 1
        ids = rows.get(customer_key, [])
        if not ids:
            lost += 1
        elif order_id not in ids:
            wrong_id += 1
    duplicates = {k: len(ids) - 1 for k, ids in rows.items() if len(ids) > 1 and k[1]}
    return {
        **out,
        "phase1_ghost": out["phase1_created"] - out["phase1_told_taken"],
        "phase2_ghost": out["phase2_created"] - out["phase2_told_taken"],
        "lost": lost,
        "duplicate_orders": sum(duplicates.values()),
        "keys_with_duplicates": len(duplicates),
        "wrong_id": wrong_id,
        "unknown": unknown,
        "confirmed": statuses[Order.Status.CONFIRMED],
        "rejected": statuses[Order.Status.REJECTED],
        "still_pending": statuses[Order.Status.PENDING],
    }


def _xadd_ceiling(ctx: Context, seconds: float) -> dict:
    """Raw XADDs per second from CEILING_CLIENTS concurrent redis-py clients in
    CEILING_PROCESSES processes, one XADD per call, to a throwaway stream (deleted after)."""
    from eventbus.redis.transport import redis_url

    stream = f"{ctx.key_prefix}spike:xadd-ceiling"
    config = {
        "mode": "xadd", "url": redis_url(), "stream": stream, "seconds": seconds,
        "clients": CEILING_CLIENTS // CEILING_PROCESSES, "start_at": time.time() + 2.0,
    }  # fmt: skip
    with ctx.bar(seconds + 2, "spike: ceiling (raw XADD)", "s") as bar:
        ticker = _tick(bar, seconds + 2)
        command = [sys.executable, "-m", "bench.spike", json.dumps(config)]
        procs = [
            subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(CEILING_PROCESSES)
        ]
        outputs = [proc.communicate() for proc in procs]
        ticker.set()
    transport = transport_for("")
    transport.client.delete(stream)
    transport.close()
    failed = [err for proc, (_, err) in zip(procs, outputs, strict=True) if proc.returncode != 0]
    if failed:
        raise RuntimeError(f"the XADD ceiling failed: {failed[0][-2000:]}")
    results = [json.loads(out) for out, _ in outputs]
    xadds = sum(r["xadds"] for r in results)
    return {
        "xadd_per_s": round(xadds / max(r["seconds"] for r in results)),
        "how": f"{CEILING_CLIENTS} clients ({CEILING_PROCESSES} processes x {CEILING_CLIENTS // CEILING_PROCESSES} "
        "redis-py asyncio connections), one XADD per call, no pipelining",
        "xadds": xadds,
        "seconds": seconds,
        "cpu_s": round(sum(r["cpu_s"] for r in results), 2),
    }


# --- 8. scale: partitions and consumers per group -------------------------------------------------

SCALE_PARTITIONS = 8


def scale(ctx: Context) -> dict:
    """EVENTBUS_PARTITIONS=8 with 1, 2 and 4 consumer processes per group, on the Redis of
    REDIS_URL and then (a full run, where a Redis 7 server is installed) on a local Redis
    Cluster of 3 masters and 3 replicas started for it: for each, orders/s through the pipeline
    (the pipeline scenario's placing, fewer orders), placed -> reserved at 100 orders/s, and the
    CPU per order of each part (placing, relay, consumers, PostgreSQL, Redis: every redis-server
    process), which is what a capacity model needs on a machine whose two cores every part
    shares. The pipeline is drained between layouts (the safe way to change the partition
    count) and put back as it was afterwards."""
    assert ctx.fleet is not None
    groups = ctx.fleet.stop_pipeline()
    saved = settings.EVENTBUS
    settings.EVENTBUS = {**saved, "PARTITIONS": SCALE_PARTITIONS}  # the placing processes fork from here
    env = {"EVENTBUS_PARTITIONS": str(SCALE_PARTITIONS)}
    n = 300 if ctx.quick else 2_000
    out: dict = {"partitions": SCALE_PARTITIONS, "orders": n}
    from tests.rediscluster import redis_server_7  # the test suite's local cluster

    try:
        out["runs"] = _scale_layouts(ctx, groups, env, n) if ctx.scale_on != "cluster" else {}
        if ctx.scale_on == "redis":
            out["cluster"] = {"skipped": "--scale-on redis"}
        elif ctx.quick:
            out["cluster"] = {"skipped": "a quick run measures one Redis only"}
        elif redis_server_7() is None:
            out["cluster"] = {"skipped": "no Redis 7 server binary (redis-server >= 7) is installed"}
        else:
            with _local_cluster(ctx) as on_cluster:
                runs = _scale_layouts(ctx, groups, {**env, **on_cluster}, n)
                # What WAIT costs: one consumer per group again, every publish confirmed by a replica.
                settings.EVENTBUS = {**settings.EVENTBUS, "WAIT_REPLICAS": 1}
                wait_env = {**env, **on_cluster, "PUBLISH_WAIT_REPLICAS": "1"}
                waited = _scale_layouts(ctx, groups, wait_env, n, layouts=(1,))
                out["cluster"] = {"masters": 3, "replicas": 3, "runs": runs, "wait_replicas_1": waited}
    finally:
        settings.EVENTBUS = saved
        ctx.fleet.start_pipeline(groups)
    return out


def _scale_layouts(
    ctx: Context, groups: list[str], env: dict[str, str], n: int, layouts: tuple[int, ...] | None = None
) -> dict:
    assert ctx.fleet is not None
    rate, seconds = 100, (3.0 if ctx.quick else 10.0)
    runs = {}
    for per_group in (layouts or ctx.scale_consumers) if not ctx.quick else (1, 2):
        ctx.fleet.start_pipeline(groups, per_group=per_group, env=env)
        _wait_for_shares(groups, per_group)
        run = _pipeline_run(ctx, n, ceiling=False)  # the layouts report orders/s and CPU, not the ratio
        since = timezone.now()
        with ctx.bar(int(rate * seconds), f"scale x{per_group}: {rate} orders/s", "order") as bar:
            ids = place_at_rate(ctx.world, rate, seconds, bar)  # type: ignore[arg-type]
        wait_until_notified(ctx.world, since, len(ids), timeout=300)  # type: ignore[arg-type]
        stages = stage_latencies(ids)
        cpu = run["cpu_ms_per_order"]
        parts = {"placing": 0.0, "relay": 0.0, "consumers": 0.0, "postgresql": 0.0, "redis": 0.0}
        for name, ms in cpu.items():
            base = name.partition("#")[0]
            if name.startswith("placing"):
                parts["placing"] += ms
            elif base in groups:
                parts["consumers"] += ms
            elif base in parts:
                parts[base] += ms
        runs[str(per_group)] = {
            "consumers_per_group": per_group,
            "pipeline_orders_per_s": run["pipeline_orders_per_s"],
            "placed_reserved_ms": summary(stages["placed_reserved"]),
            "placed_notified_ms": summary(stages["placed_notified"]),
            "cpu_ms_per_order": {k: round(v, 3) for k, v in parts.items()},
            "cpu_ms_per_order_by_process": cpu,
        }
        ctx.fleet.stop_pipeline()  # drained: every order was notified
    return runs


def _wait_for_shares(groups: list[str], per_group: int) -> None:
    """Until each group's partitions are held by its `per_group` consumers, none above its share
    (a consumer that starts first may take them all, and gives back its surplus once the others
    join: within a lease period)."""
    transport = get_transport()
    within_s = 3 * settings.EVENTBUS["LEASE_TTL_MS"] / 1000
    deadline = time.monotonic() + within_s

    def shared(group: str) -> bool:
        leased = partitions.leased(registry.streams_for(group))
        held = Counter(transport.lease_owners(group, leased).values())
        return None not in held and len(held) == per_group and max(held.values()) <= share(len(leased), per_group)

    while not all(shared(g) for g in groups):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the consumers of {groups} did not share the partitions within {within_s:g} s")
        time.sleep(0.1)


@contextlib.contextmanager
def _local_cluster(ctx: Context) -> Iterator[dict[str, str]]:
    """A local Redis Cluster (3 masters, 3 replicas: tests.rediscluster) under the run's
    directory; this process and the placing processes it forks talk to it meanwhile, under
    a key prefix of their own. Yields the environment the pipeline's processes need."""
    from eventbus.redis.transport import reset_transport
    from tests.rediscluster import LocalCluster, cluster_settings

    cluster = LocalCluster(ctx.run_dir / "redis-cluster")
    cluster.start()
    saved = settings.REDIS_URL, settings.INTAKE_SLOT_TAG, settings.CACHES, settings.EVENTBUS
    # A key prefix of its own: with the run's, the relay would find a Redis that lost the
    # token it wrote (the one of REDIS_URL) and publish every kept outbox row again.
    prefix = ctx.key_prefix + "cluster:"
    for name, value in cluster_settings(settings, cluster.url, prefix).items():
        setattr(settings, name, value)
    settings.EVENTBUS = {**settings.EVENTBUS, "KEY_PREFIX": prefix}
    reset_transport()
    try:
        yield {"REDIS_URL": cluster.url, "EVENTBUS_KEY_PREFIX": prefix}
    finally:
        settings.REDIS_URL, settings.INTAKE_SLOT_TAG, settings.CACHES, settings.EVENTBUS = saved
        reset_transport()
        cluster.stop()


SCENARIOS: dict[str, Callable[..., dict]] = {
    "relay": relay_drain,
    "pipeline": pipeline,
    "latency": latency,
    "http": http,
    "burst": burst,
    "memory": memory,
    "spike": spike,
    "scale": scale,
    "email": email,
    "peers": peers,
}

__all__ = ["SCENARIOS", "Context"]
