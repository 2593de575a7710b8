"""What every API view shares: the exception handler (the one place domain errors become HTTP
responses), the JSON parser, strict field types, and the staff-or-read-only permission."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, pagination, parsers, permissions, renderers, serializers, status
from rest_framework.response import Response

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
    # Imported here: rest_framework.views reads the REST_FRAMEWORK settings when it is imported,
    # and they name this module's classes, so importing it above would be circular whenever
    # this module is imported first (as a system check that reads the pagination class does).
    from rest_framework.views import exception_handler as drf_exception_handler

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


class StrictCharField(serializers.CharField):
    """A JSON string, not a number or boolean turned into one; max_length holds for the string
    as sent, before surrounding whitespace is trimmed (as the schema says)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false, not "yes", 1 or "on"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictDecimalField(serializers.DecimalField):
    """A decimal as a JSON string ("89.90"), the form the API answers with; a JSON number (whose
    binary value may not be the decimal the client meant) or a boolean is refused."""

    def to_internal_value(self, data: Any) -> Decimal:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# A price: more than 0, at most 10 digits before the point and 2 after (the column holds that).
_PRICE_PATTERN = r"^(?:[1-9][0-9]{0,9}(?:\.[0-9]{1,2})?|0?\.(?:0[1-9]|[1-9][0-9]?))$"


@extend_schema_field({"type": "string", "format": "decimal", "pattern": _PRICE_PATTERN, "example": "89.90"})
class PriceField(StrictDecimalField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=12, decimal_places=2, min_value=Decimal("0.01"), **kwargs)


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's browsable API with the raw-data (JSON) form only: its HTML forms post multipart,
    which the API refuses, and cannot hold a list (an order's lines)."""

    def get_rendered_html_form(self, data: Any, view: Any, method: str, request: Any) -> Any:
        if method in ("POST", "PUT", "PATCH"):
            return None
        return super().get_rendered_html_form(data, view, method, request)


_PAGE = re.compile(r"[1-9][0-9]{0,8}")


class Pagination(pagination.PageNumberPagination):
    """Pages 1, 2, ...: `page` must be such a number (DRF reads `last` as the last page and
    anything else as a 404); past the last page is a 404."""

    def get_page_number(self, request: Any, paginator: Any) -> int:
        values = request.query_params.getlist(self.page_query_param)
        if not values:
            return 1
        if len(values) > 1 or not _PAGE.fullmatch(values[0]):
            raise exceptions.ValidationError({self.page_query_param: ["A page is a whole number from 1, given once."]})
        return int(values[0])

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 999_999_999}
        return parameters


class StrictQueryParams:
    """A mixin for viewsets: a query parameter the action does not take is a 400 naming it, not
    silently ignored (a misspelt filter would otherwise return everything). Every action takes
    `format` (DRF's `?format=json`); `list` takes `page`; `query_params` adds per action."""

    query_params: dict[str, frozenset[str]] = {}

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        action = getattr(self, "action", None)
        if action is None:  # a method the endpoint does not take: that is the 405 to answer
            return
        allowed = {"format", *self.query_params.get(action, ())}
        if action == "list":
            allowed.add("page")
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise exceptions.ValidationError(
                {name: ["This endpoint takes no such query parameter."] for name in unknown}
            )


class IsStaffOrReadOnly(permissions.BasePermission):
    """Anyone signed in may read; only staff may write."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_staff
