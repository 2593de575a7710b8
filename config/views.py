"""Site-wide views: the health check."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, JsonResponse

from eventbus.transport import TransportUnavailable, get_transport


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness of the two servers the system needs: 200 if both answer, else 503."""
    checks = {}
    try:
        connection.ensure_connection()
        checks["database"] = "ok"
    except (OperationalError, InterfaceError) as exc:
        checks["database"] = f"unavailable: {exc}".strip()
    try:
        get_transport().ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        checks["redis"] = f"unavailable: {exc}" if isinstance(exc, TransportUnavailable) else f"error: {exc}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", **checks}, status=200 if healthy else 503)
