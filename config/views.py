"""Site-wide views: health check and error pages that stay JSON for API clients."""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import server_error as html_server_error

from config.middleware import database_unavailable_response
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


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if isinstance(exc, (OperationalError, InterfaceError)):
        return database_unavailable_response()
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    return html_server_error(request)
