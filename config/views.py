"""Site-wide views: liveness (/healthz) and readiness (/readyz)."""

from __future__ import annotations

from django.db import DatabaseError, InterfaceError, connection
from django.http import HttpRequest, JsonResponse

from config.metrics import _allowed as reader_allowed  # who may read /metrics may see the pipeline
from eventbus.messages import registry
from eventbus.redis.transport import get_transport
from eventbus.runtime.heartbeats import live_processes

# Well inside a load balancer's health check timeout: a stalled Redis is reported, and the
# node stays in.
HEALTH_REDIS_TIMEOUT_S = 0.5


def _servers() -> dict[str, str]:
    checks = {"database": "ok", "redis": "ok"}
    try:
        # A query, not just ensure_connection(): a persistent connection outlives its server.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except (DatabaseError, InterfaceError):
        checks["database"] = "unavailable"
    try:
        get_transport().ping(timeout_s=HEALTH_REDIS_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - anything but a pong means Redis is not usable
        checks["redis"] = "unavailable"
    return checks


def healthz(request: HttpRequest) -> JsonResponse:
    """Whether this web process can serve: 503 only when the database does not answer. Redis
    down is reported but is not down: the API keeps taking orders (their events wait in the
    outbox), so a load balancer must not take every node out during a Redis outage. Says
    nothing of the errors themselves: this page is public."""
    checks = _servers()
    serving = checks["database"] == "ok"
    return JsonResponse({"status": "ok" if serving else "unavailable", **checks}, status=200 if serving else 503)


def readyz(request: HttpRequest) -> JsonResponse:
    """Whether this web process can take orders: 200 when the database answers (Redis down is
    shown, but orders are still taken then, so it is not "not ready"). With `?pipeline=1`, for
    a monitor rather than a load balancer, it also needs Redis, a live consumer in every group
    and a live relay (by their heartbeats) and lists what is missing: the pipeline's shape, so
    only to staff signed in or to whoever may read /metrics (config.metrics); anyone else gets
    the status."""
    checks = _servers()
    ready = checks["database"] == "ok"
    body: dict[str, object] = dict(checks)
    if request.GET.get("pipeline") == "1":
        missing = []
        if checks["redis"] != "ok":
            missing.append("redis")
        else:
            try:
                alive = live_processes(get_transport())
            except Exception:  # noqa: BLE001 - Redis went away between the two calls
                alive = []
                missing.append("redis")
            groups = {g: sum(1 for p in alive if p.role == "consumer" and g in p.groups) for g in registry.groups()}
            relays = sum(1 for p in alive if p.role == "relay")
            body["consumers"], body["relays"] = groups, relays
            missing += [f"consumer of group {g}" for g, n in groups.items() if not n]
            if not relays:
                missing.append("relay")
        body["missing"] = missing
        ready = ready and not missing
        if not _may_see_pipeline(request):
            body = {}
    return JsonResponse({"status": "ready" if ready else "not ready", **body}, status=200 if ready else 503)


def _may_see_pipeline(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.is_staff) or reader_allowed(request)
