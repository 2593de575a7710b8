from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bench import report
from bench.fleet import Fleet, database_url
from bench.scenarios import SCENARIOS, Context, delete_keys, transport_for
from bench.world import build_world, wait_for_catalog, warm_up
from eventbus.messages import registry
from eventbus.models import OutboxEvent
from eventbus.runtime.relay import Relay

ORDER = ["relay", "pipeline", "latency", "peers", "http", "burst", "memory", "spike", "scale", "email"]


class Command(BaseCommand):
    help = (
        "Benchmark the system against DATABASE_URL and REDIS_URL with production-like settings: relay drain, "
        "pipeline throughput, latency at a steady rate, HTTP, a burst, consumer memory, a spike of 10,000 "
        "customers. Prints a table, writes JSON and a PNG under var/bench/. Run it on a database no other relay uses."
    )
    # The processes measured run production's system checks (into their logs); here they would
    # only print deployment warnings (EMAIL_URL, ...) above the benchmark's own messages.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quick", action="store_true", help="a few seconds per scenario (what the tests run)")
        parser.add_argument(
            "--only", default=",".join(ORDER), help=f"comma-separated scenarios, from: {', '.join(ORDER)}"
        )
        parser.add_argument("--out", default=str(settings.VAR_DIR / "bench"), help="directory for JSON, PNG, logs")
        parser.add_argument(
            "--placing-processes", type=int, default=2, help="processes placing orders in the pipeline scenario"
        )
        parser.add_argument(
            "--placing-threads", type=int, default=8, help="customers at once at each placing process's order desk"
        )
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers for http and burst")
        parser.add_argument("--web-threads", type=int, default=16, help="threads per gunicorn worker")
        parser.add_argument(
            "--scale-on", choices=("both", "redis", "cluster"), default="both",
            help="where the scale scenario runs: REDIS_URL's Redis, a local Redis Cluster it starts, or both",
        )  # fmt: skip
        parser.add_argument(
            "--scale-consumers", default="1,2,4", help="the scale scenario's consumers per group, comma-separated"
        )
        parser.add_argument(
            "--profile", action="store_true",
            help="sample every process of the pipeline scenario with py-spy; summary in profile-summary.txt",
        )  # fmt: skip

    def handle(self, *args: object, **options: object) -> None:
        chosen = [s.strip() for s in str(options["only"]).split(",") if s.strip()]
        unknown = sorted(set(chosen) - set(ORDER))
        if unknown:
            raise CommandError(f"unknown scenario(s) {', '.join(unknown)}: choose from {', '.join(ORDER)}")
        if settings.DEBUG:
            raise CommandError("DEBUG is on: benchmarks measure production settings; run with DEBUG=false")
        _require_migrated()
        waiting = OutboxEvent.objects.filter(published_at__isnull=True).count()
        if waiting:
            raise CommandError(
                f"the outbox holds {waiting} unpublished event(s) that are not the benchmark's: "
                "run it on a scratch database (no other relay or consumers on it)"
            )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        out = Path(str(options["out"]))
        run_dir = out / stamp
        run_dir.mkdir(parents=True, exist_ok=True)
        ctx = Context(
            quick=bool(options["quick"]),
            run_dir=run_dir,
            key_prefix=f"bench:{uuid.uuid4().hex[:8]}:",
            profile=bool(options["profile"]),
            placing_processes=max(1, int(options["placing_processes"])),  # type: ignore[call-overload]
            placing_threads=max(1, int(options["placing_threads"])),  # type: ignore[call-overload]
            scale_on=str(options["scale_on"]),
            scale_consumers=tuple(int(k) for k in str(options["scale_consumers"]).split(",") if k.strip()),
        )
        settings.EVENTBUS = {**settings.EVENTBUS, "KEY_PREFIX": ctx.key_prefix}
        # Orders placed in this process: no per-customer limits (see bench_env).
        settings.THROTTLES_ENABLED = False
        settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0

        results: dict = {}
        self.took: dict[str, float] = {}  # wall seconds per scenario, in the order run
        started = time.monotonic()
        self.stderr.write(f"benchmark {'(quick) ' if ctx.quick else ''}-> {run_dir}")
        try:
            self._run(ctx, chosen, results, int(options["web_workers"]), int(options["web_threads"]))  # type: ignore[call-overload]
        finally:
            if ctx.fleet:
                ctx.fleet.stop()
            # Rows published on commit whose marks the relay had not yet taken: delete them
            # before the marks go with the benchmark's keys.
            Relay(transport=transport_for(ctx.key_prefix)).forget_published()
            delete_keys(ctx.key_prefix)

        flat = report.flatten(results)
        document = {
            "when": stamp,
            "quick": ctx.quick,
            "machine": _machine(),
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "seconds": round(time.monotonic() - started, 1),
            "scenario_seconds": self.took,
            **flat,
            "goals_met": report.verdicts(flat),
            "scenarios": report.clean(results),
        }
        (run_dir / "results.json").write_text(json.dumps(document, indent=2, default=str))
        (out / "latest.json").write_text(json.dumps(document, indent=2, default=str))
        report.plot(results, run_dir / "latency.png")
        if (run_dir / "latency.png").exists():
            (out / "latest.png").write_bytes((run_dir / "latency.png").read_bytes())
        self.stdout.write(report.table(results, flat))
        took = ", ".join(f"{name} {s:g} s" for name, s in self.took.items())
        self.stdout.write(f"\nseconds: {document['seconds']:g} in all ({took})")
        self.stdout.write(f"\nJSON: {run_dir / 'results.json'}\nplot: {run_dir / 'latency.png'}")

    def _run(self, ctx: Context, chosen: list[str], results: dict, workers: int, threads: int) -> None:
        if "relay" in chosen:
            with self._timing("relay"):
                results["relay"] = SCENARIOS["relay"](ctx)
        rest = [s for s in chosen if s != "relay"]
        if not rest:
            return
        with self._timing("starting the fleet"):
            ctx.fleet = Fleet(ctx.key_prefix, ctx.run_dir / "logs")
            ctx.fleet.start_pipeline(registry.groups())
            ctx.world = build_world()
            wait_for_catalog(ctx.world)
            warm_up(ctx.world, 200 if ctx.quick else 2_000)
        port = 0
        for name in rest:
            with self._timing(name):
                port = self._scenario(ctx, name, results, port, workers, threads)

    @contextlib.contextmanager
    def _timing(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        yield
        self.took[name] = round(time.monotonic() - began, 1)

    def _scenario(self, ctx: Context, name: str, results: dict, port: int, workers: int, threads: int) -> int:
        """Run one scenario of the fleet; returns the port of the web left running (0: none)."""
        assert ctx.fleet is not None
        if name == "spike":
            # The web as deployed, not the one tuned for http and burst (bench/fleet.py).
            ctx.fleet.stop_web()
            port = _free_port()
            ctx.fleet.start_web_as_deployed(port)
            _wait_for_port(port, ctx)
            results[name] = SCENARIOS[name](ctx, port)
            ctx.fleet.check_alive()
            ctx.fleet.stop_web()
            return 0
        if name in ("http", "burst") and not port:
            port = _free_port()
            ctx.fleet.start_web(port, workers=workers, threads=threads)
            _wait_for_port(port, ctx)
        ctx.fleet.check_alive()
        results[name] = SCENARIOS[name](ctx, port) if name in ("http", "burst") else SCENARIOS[name](ctx)
        ctx.fleet.check_alive()
        return port


def _require_migrated() -> None:
    """One line, not a traceback from the first query, on a database `migrate` has not set up."""
    executor = MigrationExecutor(connection)
    missing = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not missing:
        return
    where = database_url(password=False)
    if not executor.recorder.has_table() or not executor.recorder.applied_migrations():
        raise CommandError(f"the database at {where} has no tables: run `python manage.py migrate` first")
    raise CommandError(
        f"the database at {where} lacks {len(missing)} migration(s): run `python manage.py migrate` first"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, ctx: Context, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert ctx.fleet is not None
        ctx.fleet.check_alive()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise CommandError(f"gunicorn did not listen on port {port} within {timeout:g} s")


def _machine() -> dict:
    import os
    import platform

    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
