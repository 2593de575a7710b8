"""Gunicorn settings the Procfile loads (`-c python:config.gunicorn`); everything else is on
the Procfile's command line."""

from __future__ import annotations

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exited leaves its metric files behind in PROMETHEUS_MULTIPROC_DIR: its
    counters stay in the sums (they happened), its live gauges must go."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
