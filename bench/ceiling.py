"""The database's own ceiling for this design's writes, measured right after the pipeline
scenario on the same server, with pgbench (no Python), five runs at once: bench/pgbench/place.sql
(one order, its two lines and its outbox row per transaction) from as many connections as the
pipeline placed from; inventory.sql, orders.sql and notifications.sql (each a batch of orders
through one consumer group in one transaction: inbox rows, effect, next event's outbox rows),
and relay.sql (the published outbox rows deleted), one connection each, as one process per group
runs, with as many orders per batch as the pipeline's consumers averaged in the run. The ceiling
in orders/s is the slowest of the five (placings/s; batches/s x batch). The scratch tables it
writes (bench_pg_*) are dropped afterwards."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import Avg

SQL = Path(__file__).resolve().parent / "pgbench"
STAGES = ("inventory", "orders", "notifications", "relay")  # one pgbench client each
GOAL = 0.7  # the pipeline at >= 70% of the database's own limit (issue 23)


def _connection_args() -> tuple[list[str], dict[str, str]]:
    db = settings.DATABASES["default"]
    args = ["-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"] or "postgres"]
    env = {**os.environ, **({"PGPASSWORD": db["PASSWORD"]} if db["PASSWORD"] else {})}
    return args, env


def _psql(script: str) -> None:
    args, env = _connection_args()
    subprocess.run(
        ["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", *args, "-d", settings.DATABASES["default"]["NAME"],
         "-f", str(SQL / script)],
        env={**env, "PGOPTIONS": "-c client_min_messages=warning"}, check=True, capture_output=True, text=True,
    )  # fmt: skip


def mean_batch(since: dt.datetime) -> float:
    """Events per consumer batch the pipeline's consumers averaged since `since`."""
    from eventbus.models import ConsumerBatch

    got = ConsumerBatch.objects.filter(
        started_at__gte=since, consumer_group__in=("inventory", "orders", "notifications"), size__gt=0
    ).aggregate(size=Avg("size"))["size"]
    return float(got or 1.0)


def database_ceiling(clients: int, seconds: float, batch: float) -> dict:
    """pgbench's orders/s for this design's writes (see the module's docstring)."""
    if connection.vendor != "postgresql":
        return {"skipped": "SQLite: no pgbench (the ceiling is measured on PostgreSQL)"}
    if not shutil.which("pgbench") or not shutil.which("psql"):
        return {"skipped": "pgbench or psql is not on PATH (PostgreSQL's client programs)"}
    size = max(1, round(batch))
    args, env = _connection_args()
    database = settings.DATABASES["default"]["NAME"]
    duration = str(max(1, round(seconds)))
    _psql("setup.sql")
    try:
        runs = {
            script: subprocess.Popen(
                ["pgbench", "-n", *args, "-c", str(n), "-j", str(min(n, 2)), "-T", duration, "-D", f"batch={size}",
                 "-f", str(SQL / f"{script}.sql"), database],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for script, n in (("place", clients), *((name, 1) for name in STAGES))
        }  # fmt: skip
        outputs = {script: run.communicate(timeout=seconds + 120) for script, run in runs.items()}
    finally:
        _psql("teardown.sql")
    orders_per_s = {}
    for script, (out, err) in outputs.items():
        found = re.search(r"^tps = ([\d.]+)", out, re.M)
        if runs[script].returncode != 0 or not found:
            tail = (err or out).strip().splitlines()[-1:] or ["no output"]
            return {"skipped": f"pgbench {script}.sql failed ({runs[script].returncode}): {tail[0]}"}
        orders_per_s[script] = round(float(found.group(1)) * (1 if script == "place" else size))
    return {
        "ceiling_orders_per_s": min(orders_per_s.values()),
        "orders_per_s": orders_per_s,
        "batch": size,
        "clients": clients,
        "seconds": seconds,
    }


def against_database(pipeline: dict, since: dt.datetime, *, quick: bool) -> dict:
    """The pipeline scenario's orders/s against the database's ceiling, measured now with the
    consumers' mean batch since `since` and the pipeline's number of placing connections."""
    clients = pipeline["processes"] * pipeline["threads"]
    ceiling = database_ceiling(clients, 2.0 if quick else 10.0, mean_batch(since))
    if "skipped" in ceiling:
        return ceiling
    return {
        **ceiling,
        "ratio_to_database": round(pipeline["pipeline_orders_per_s"] / ceiling["ceiling_orders_per_s"], 3),
    }
