"""Site-wide views: the health check."""

from __future__ import annotations

from django.db import DatabaseError, InterfaceError, connection
from django.http import HttpRequest, JsonResponse

from eventbus.transport import get_transport

# Well inside a load balancer's health check timeout: a stalled Redis is reported, and the
# node stays in.
HEALTH_REDIS_TIMEOUT_S = 0.5


def healthz(request: HttpRequest) -> JsonResponse:
    """Whether this web process can serve: 503 only when the database does not answer. Redis
    down is reported but is not down: the API keeps taking orders (their events wait in the
    outbox), so a load balancer must not take every node out during a Redis outage. Says
    nothing of the errors themselves: this page is public."""
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
    serving = checks["database"] == "ok"
    return JsonResponse({"status": "ok" if serving else "unavailable", **checks}, status=200 if serving else 503)
