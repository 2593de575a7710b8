"""Gunicorn settings the Procfile loads (`-c python:config.gunicorn`); everything else is on
the Procfile's command line."""

from __future__ import annotations

import os
from typing import Any

from eventbus.logcontext import set_role


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
