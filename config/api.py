"""What every API view shares: the exception handler (the one place domain errors become HTTP
responses), strict field types, strict query parameters, fast rendering, and the
staff-or-read-only permission. The classes DRF's settings name (parser, renderer, pagination)
are in config.rest."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.response import Response

from config.errorpages import DATABASE_UNAVAILABLE, suspicious_request
from config.errors import Conflict, DomainError, InvalidInput, LimitReached, NotFound, Unauthenticated, Unprocessable


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error answer has `detail` (for a person) and `code` (stable, for a program: the
    schema lists them, config.openapi.ERROR_CODES); a 400 about fields also has a message per
    field beside them."""
    response = _error_response(exc, context)
    if response is not None:
        response.data = _with_code(response.data, exc)
    return response


def domain_error_answer(exc: DomainError) -> tuple[int, Any, dict[str, str]]:
    """The HTTP answer to a domain error, as (status, JSON body, headers): what the exception
    handler answers, for the web's order desk (orders.desk), which answers outside DRF."""
    response = exception_handler(exc, {})
    assert response is not None, exc
    return response.status_code, response.data, dict(response.items())


INVALID = "The request is not valid: see the message for each field."


def _with_code(data: Any, exc: Exception) -> Any:
    if isinstance(data, dict) and "detail" in data and "code" in data:
        return data
    if isinstance(exc, (exceptions.ValidationError, InvalidInput)):
        if isinstance(data, list):  # ValidationError("...") on the whole request
            return {"detail": " ".join(str(m) for m in data) or INVALID, "code": "invalid"}
        general = data.get("non_field_errors") if isinstance(data, dict) else None
        detail = " ".join(str(m) for m in general) if isinstance(general, list) and general else INVALID
        return {"detail": detail, "code": "invalid", **data}
    if isinstance(data, dict) and "detail" in data:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else _DJANGO_CODES.get(type(exc), "error")
        return {**data, "code": code}
    return data


_DJANGO_CODES: dict[type[Exception], str] = {Http404: "not_found", DjangoPermissionDenied: "permission_denied"}


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, InvalidInput):
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Unauthenticated):
        return Response({"detail": str(exc), "code": exc.code}, status=status.HTTP_401_UNAUTHORIZED,
                        headers={"WWW-Authenticate": "Token"})  # fmt: skip
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
        detail, code = suspicious_request(exc)
        return Response({"detail": detail, "code": code}, status=status.HTTP_400_BAD_REQUEST)
    # Imported here: rest_framework.views reads the REST_FRAMEWORK settings when it is imported,
    # and they name this module's classes, so importing it above would be circular whenever
    # this module is imported first (as a system check that reads the pagination class does).
    from rest_framework.views import exception_handler as drf_exception_handler

    return drf_exception_handler(exc, context)


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


class RenderedSerializer:
    """A mixin for read serializers on hot paths: `render(obj)` is what `Serializer(obj).data`
    gives, its declared fields each turned to JSON by its own field's to_representation, but
    worked out once per class: DRF builds and deep-copies the field tree for every serializer
    instance and walks it through generators and get_attribute, which costs more than rendering
    an order. Handles plain fields, `source` paths, and nested serializers (`many=True`
    included, over a list or a related manager); a serializer with anything else renders
    through DRF as usual."""

    @classmethod
    def render(cls, instance: Any) -> dict[str, Any]:
        plan = cls.__dict__.get("_plan")
        if plan is None:
            plan = cls._plan = _render_plan(cls())  # type: ignore[attr-defined, call-arg]
        return plan(instance)


def _render_plan(serializer: serializers.Serializer) -> Any:
    """A function rendering an object as `serializer` would (see RenderedSerializer)."""
    steps = []
    for field in serializer.fields.values():
        if field.write_only:
            continue
        if isinstance(field, serializers.ListSerializer):
            child = _render_plan(field.child)
            steps.append((field.field_name, tuple(field.source_attrs), lambda v, c=child: [c(x) for x in _items(v)]))
        elif isinstance(field, serializers.BaseSerializer):
            steps.append((field.field_name, tuple(field.source_attrs), _render_plan(field)))
        elif isinstance(field, serializers.SerializerMethodField):
            return serializer.to_representation  # DRF's own path: it needs the bound method
        else:
            steps.append((field.field_name, tuple(field.source_attrs), field.to_representation))

    def render(instance: Any) -> dict[str, Any]:
        out = {}
        for name, attrs, convert in steps:
            value = instance
            for attr in attrs:
                value = value[attr] if isinstance(value, dict) else getattr(value, attr)
            out[name] = None if value is None else convert(value)
        return out

    return render


def _items(value: Any) -> Any:
    return value.all() if hasattr(value, "all") else value


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
