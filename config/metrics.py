"""Prometheus metrics of the shop and of the web: what /metrics serves, who may read it, the
HTTP request metrics, and the shop's own counters (orders placed and finalized, how long each
stage of an order takes).

/metrics answers with `Authorization: Bearer <METRICS_TOKEN>`; without a token only to a
loopback client, and only with DEBUG or METRICS_ALLOW_LOOPBACK (behind a proxy on the same host
every client looks like loopback); 403 otherwise. It is never throttled or redirected.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

import bulk
from eventbus.redis.timeseries import recorder
from eventbus.runtime.metrics import DURATION_BUCKETS, PipelineCollector
from notifications.metrics import EmailCollector

__all__ = [
    "INTAKE_ANSWERS",
    "ORDERS_FINALIZED",
    "ORDERS_PLACED",
    "ORDER_STAGE_SECONDS",
    "RequestMetricsMiddleware",
    "metrics_view",
    "order_stage_reached",
    "orders_counted",
    "series_of",
]

ORDERS_PLACED = Counter("eventshop_orders_placed", "Orders placed (committed).")
INTAKE_ANSWERS = Counter(
    "eventshop_intake_answers",
    "Orders the web's order desk answered (orders.intake, orders.desk), by outcome: placed (201, committed), "
    "replay (201, an Idempotency-Key seen before), refused (400/401/422/429 by the placing rules), throttled "
    "(429), busy and expired (503, nothing placed), failed (503, the database refused; nothing placed), "
    "abandoned (the client left before its order was handed to the database).",
    ["outcome"],
)
ORDERS_FINALIZED = Counter("eventshop_orders_finalized", "Orders that reached a final status.", ["status"])
ORDER_STAGE_SECONDS = Histogram(
    "eventshop_order_stage_seconds",
    "Time from an order's placement until a stage of it committed: reserved, confirmed, notified.",
    ["stage"],
    buckets=DURATION_BUCKETS,
)

HTTP_REQUESTS = Counter(
    "eventshop_http_requests", "HTTP requests answered, by view and status.", ["view", "method", "status"]
)
HTTP_DURATION = Histogram(
    "eventshop_http_request_duration_seconds",
    "Time to answer an HTTP request, by view.",
    ["view", "method"],
    buckets=DURATION_BUCKETS,
)


def order_stage_reached(stage: str, started: Iterable[dt.datetime | None]) -> None:
    """Once the current transaction commits, observe for each order how long it took from its
    placement (its events' correlation start, carried by the envelope) to `stage` (reserved,
    confirmed, notified): the Prometheus histogram and the console's time buckets. Envelopes
    from before the start was carried (None) are left out."""
    moments = [s for s in started if s is not None]
    if moments:
        bulk.on_commit_once(("order-stage", stage), moments, functools.partial(_observe_stage, stage))


def _observe_stage(stage: str, moments: list[dt.datetime]) -> None:
    now = time.time()
    histogram = ORDER_STAGE_SECONDS.labels(stage)
    for started in moments:
        seconds = max(now - started.timestamp(), 0.0)
        histogram.observe(seconds)
        recorder.observe(f"stage:{stage}", seconds)


def orders_counted(counter: Counter | Any, n: int = 1) -> None:
    """Count n orders on `counter` (placed, or finalized with a status) once the current
    transaction commits."""
    if n:
        transaction.on_commit(functools.partial(counter.inc, n))


_pipeline_collector = PipelineCollector()
_email_collector = EmailCollector()
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _registry() -> CollectorRegistry:
    """What one scrape reads: every process's counters on this host in multiprocess mode (this
    process's alone otherwise), and the gauges read from Redis and the database now."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_pipeline_collector)
        registry.register(_email_collector)
        return registry
    if _pipeline_collector not in REGISTRY._collector_to_names:  # registered once per process
        REGISTRY.register(_pipeline_collector)
        REGISTRY.register(_email_collector)
    return REGISTRY


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())
    if header:
        return False
    if not (settings.DEBUG or settings.METRICS_ALLOW_LOOPBACK):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format (see the module docstring for who may read it)."""
    if not _allowed(request):
        return HttpResponse(
            "Forbidden: send Authorization: Bearer <METRICS_TOKEN>.\n", status=403, content_type="text/plain"
        )
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def series_of(match: ResolverMatch | None, method: str | None) -> tuple[str, str]:
    """The (view, method) labels of a request: its URL pattern's name, and its method unless made up."""
    view = (match.view_name or match.route) if match else "<unmatched>"
    return view, method if method in _METHODS else "other"  # no series per made-up method


class RequestMetricsMiddleware:
    """Counts every request and times it, labelled by the URL pattern's name (not the path, which
    would make a series per order)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # The series of each (view, method[, status]), found once: labels() takes a lock and
        # checks its values on every call. Bounded: views x methods x statuses.
        self._durations: dict[tuple[str, str], Any] = {}
        self._counts: dict[tuple[str, str, int], Any] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        view, method = series_of(request.resolver_match, request.method)
        key = (view, method)
        duration = self._durations.get(key) or self._durations.setdefault(key, HTTP_DURATION.labels(view, method))
        duration.observe(time.perf_counter() - started)
        count_key = (view, method, response.status_code)
        count = self._counts.get(count_key)
        if count is None:
            count = self._counts.setdefault(count_key, HTTP_REQUESTS.labels(view, method, str(response.status_code)))
        count.inc()
        return response
