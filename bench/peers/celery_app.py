"""The peer's Celery app. Its broker and key prefix come from the environment the scenario
starts the worker with (BENCH_PEERS_BROKER_URL, BENCH_PEERS_KEY_PREFIX): every key it writes
is under the run's prefix, deleted afterwards; no other Celery app shares them."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_bench")

app = Celery("bench_peers")
app.conf.update(
    broker_url=os.environ.get("BENCH_PEERS_BROKER_URL", "redis://127.0.0.1:6379/9"),
    broker_connection_retry_on_startup=True,
    broker_transport_options={"global_keyprefix": os.environ.get("BENCH_PEERS_KEY_PREFIX", "bench-peers:")},
    task_ignore_result=True,
    timezone="UTC",
    include=["bench.peers.tasks"],
)
# Read by celery.fixups.django: keep each worker's database connection for 1,000 tasks instead
# of closing it around every task (the baseline's `prefork2_dbreuse` configuration).
app.conf.CELERY_DB_REUSE_MAX = 1000
