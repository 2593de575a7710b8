"""What every API view shares: the exception handler (the one place domain errors become HTTP
responses), the JSON parser, strict field types, and the staff-or-read-only permission."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, parsers, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errorpages import DATABASE_UNAVAILABLE
from config.errors import Conflict, InvalidInput, LimitReached, NotFound, Unprocessable

# No request this API takes nests deeper than 3; anything far deeper is an attack on the parser
# (a body nested ~1,000 deep makes Python's json raise RecursionError) or on whatever walks it.
MAX_JSON_DEPTH = 32


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, InvalidInput):
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc), "code": "conflict"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, Unprocessable):
        return Response({"detail": str(exc), "code": exc.code}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if isinstance(exc, LimitReached):
        return Response(
            {"detail": str(exc), "code": exc.code},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if isinstance(exc, NotFound):
        exc = Http404(str(exc))
    if isinstance(exc, (OperationalError, InterfaceError)):
        return Response(DATABASE_UNAVAILABLE, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "2"})
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "The request body is too large.", "code": "request_too_large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):  # too many form fields, and the like
        return Response({"detail": str(exc), "code": "bad_request"}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing with a 400 (not a RecursionError and a 500) a document nested
    deeper than MAX_JSON_DEPTH."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels") from None
        if _depth_exceeds(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels")
        return data


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Walk without recursion: True if any value sits deeper than `limit` containers."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class StrictIntegerField(serializers.IntegerField):
    """An integer in JSON, not a string or float that looks like one, and not a boolean."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class IsStaffOrReadOnly(permissions.BasePermission):
    """Anyone signed in may read; only staff may write."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_staff
