"""Gunicorn settings the Procfile loads (`-c python:config.gunicorn`); everything else is on
the Procfile's command line."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from eventbus.runtime.logcontext import set_role

# The web pools its database connections (config/settings.py, docs/operations.md "Database
# connections") unless DATABASE_POOL says otherwise or PgBouncer pools them; without a pool it
# connects per request (under ASGI a persistent connection outlives its request's thread).
os.environ.setdefault("DATABASE_POOL", "true")
os.environ.setdefault("CONN_MAX_AGE", "0")
# The metrics directory this master made (a master started by USR2 inherits the old one's
# environment, not this): only its maker removes it.
_OWN_METRICS_DIR = "EVENTSHOP_WEB_OWN_METRICS_DIR"
_made_metrics_dir = ""


def on_starting(server: Any) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR each worker would count alone and /metrics would answer
    whichever worker took the scrape (161 orders, then 139). The master makes an empty
    directory of its own before any worker forks, so every scrape adds up all the workers;
    on_exit removes it. A directory given (make run's, shared with the relay and consumers) is
    left to whoever gave it."""
    global _made_metrics_dir
    inherited = os.environ.pop(_OWN_METRICS_DIR, "")
    if inherited and os.environ.get("PROMETHEUS_MULTIPROC_DIR") == inherited:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]  # the replaced master's (USR2): it removes it
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _made_metrics_dir = tempfile.mkdtemp(prefix="eventshop-web-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_OWN_METRICS_DIR] = _made_metrics_dir


def on_exit(server: Any) -> None:
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exited leaves its metric files behind in PROMETHEUS_MULTIPROC_DIR: its
    counters stay in the sums (they happened), its live gauges must go."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _logging() -> dict:
    """Gunicorn's own error and access logs in the project's format (config.logs)."""
    from config.logs import default_format, logging_config

    debug = os.environ.get("DEBUG", "false").lower() in ("1", "true", "yes", "on")
    return logging_config(log_format=default_format(debug=debug), level=os.environ.get("LOG_LEVEL", "INFO").upper())


logconfig_dict = _logging()
set_role("web")
# The access line for a person (LOG_FORMAT=text); JSON lines carry its fields one by one. The
# request id is the web's X-Request-ID answer header.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms %({x-request-id}o)s'
