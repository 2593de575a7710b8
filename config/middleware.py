"""A database outage answers 503 with a JSON body, never a traceback page."""

from __future__ import annotations

from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.api import DATABASE_UNAVAILABLE


def database_unavailable_response() -> JsonResponse:
    response = JsonResponse(DATABASE_UNAVAILABLE, status=503)
    response["Retry-After"] = "2"
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, (OperationalError, InterfaceError)):
            return database_unavailable_response()
        return None
