"""What every API view shares: the exception handler (the one place domain errors become HTTP
responses), strict field types, and the staff-or-read-only permission."""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import Conflict, InvalidInput, NotFound

DATABASE_UNAVAILABLE = {"detail": "The database is unavailable; please retry shortly.", "code": "database_unavailable"}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, InvalidInput):
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc), "code": "conflict"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, NotFound):
        exc = Http404(str(exc))
    if isinstance(exc, (OperationalError, InterfaceError)):
        return Response(DATABASE_UNAVAILABLE, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "2"})
    return drf_exception_handler(exc, context)


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
