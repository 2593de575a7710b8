"""Error responses that Django, not a DRF view, produces: a URL that resolves to nothing, a body
over the size limit, too many form fields, an unhandled exception. Under /api/ they are JSON
with DRF's shape (`{"detail": ..., "code": ...}`) unless the client prefers HTML (a person on
the browsable API); elsewhere they are Django's own pages."""

from __future__ import annotations

import sys

from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

__all__ = [
    "bad_request", "error_response", "page_not_found", "permission_denied", "server_error", "suspicious_request",
    "wants_json",
]  # fmt: skip

API_PREFIX = "/api/"

DATABASE_UNAVAILABLE = {"detail": "The database is unavailable; please retry shortly.", "code": "database_unavailable"}


def wants_json(request: HttpRequest) -> bool:
    """An API URL asked for by anything but a browser (curl's `*/*` and no Accept at all are JSON)."""
    if not request.path.startswith(API_PREFIX):
        return False
    return request.get_preferred_type(["application/json", "text/html"]) != "text/html"


def error_response(
    request: HttpRequest, status: int, detail: str, code: str, *, headers: dict[str, str] | None = None
) -> HttpResponse:
    """The error as JSON for an API client, else as a short plain page."""
    if wants_json(request):
        response: HttpResponse = JsonResponse({"detail": detail, "code": code}, status=status)
    else:
        response = HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def database_unavailable(request: HttpRequest | None = None) -> JsonResponse:
    response = JsonResponse(DATABASE_UNAVAILABLE, status=503)
    response["Retry-After"] = "2"
    return response


def too_large(request: HttpRequest) -> HttpResponse:
    from django.conf import settings

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_response(
        request, 413, f"The request body is larger than the limit of {limit} bytes.", "request_too_large"
    )


BAD_HOST = "The Host header names no site this server serves."


def suspicious_request(exception: Exception) -> tuple[str, str]:
    """(detail, code) for a request Django finds suspicious: said in the API's words, never
    Django's message (which may repeat what the client sent, such as its Host, or name a
    setting)."""
    if isinstance(exception, DisallowedHost):
        return BAD_HOST, "bad_host"
    if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):
        return "The request has more fields than the server takes.", "too_many_fields"
    return "Bad request.", "bad_request"


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django calls this for a SuspiciousOperation: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a
    413, too many fields or a malformed request a 400."""
    if isinstance(exception, RequestDataTooBig):
        return too_large(request)
    if wants_json(request):
        return error_response(request, 400, *suspicious_request(exception))
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 403, "You do not have permission to perform this action.", "permission_denied")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 404, "Not found.", "not_found")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return database_unavailable(request)
    if wants_json(request):
        return error_response(request, 500, "Internal server error.", "server_error")
    return defaults.server_error(request)
