"""What the OpenAPI schema says about errors: every operation documents the error responses it
can give, each with its JSON body, derived from what the operation is (signed in or anonymous,
takes a body or not, addresses one object or pages a list). One place, so a new endpoint is
documented like the others; an operation that can give more (409 on cancel, 422 on placing)
says so with extend_schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension

__all__ = ["ERROR_CODES", "ERROR_COMPONENTS", "ListSerializerBounds", "document_errors"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_VALIDATION = {"$ref": "#/components/schemas/ValidationError"}

# Every `code` an error answer under /api/ can carry (config.api.exception_handler,
# config.errorpages, the order intake), and what it means. Stable: a program may branch on them.
ERROR_CODES: dict[str, str] = {
    "invalid": "A field breaks a rule: see the message for each field.",
    "parse_error": "The body is not the JSON (or form) it claims to be.",
    "bad_request": "The request is malformed.",
    "bad_host": "The Host header names no site this server serves.",
    "duplicate_header": "A header that must appear once (Authorization, Content-Type, Host, ...) was sent twice.",
    "request_uri_too_long": "The request line is longer than the server takes (414).",
    "request_header_fields_too_large": "Too many header fields, or one too large (431).",
    "request_timeout": "The request's head or body took too long to arrive (408).",
    "too_many_fields": "The request has more fields than the server takes.",
    "not_authenticated": "No credentials were sent.",
    "authentication_failed": "The credentials sent are not valid.",
    "permission_denied": "Signed in, but not allowed.",
    "not_found": "No such object for this user, or no such page.",
    "method_not_allowed": "This method is not allowed here.",
    "not_acceptable": "No answer in a media type the Accept header allows.",
    "conflict": "The object's current state does not allow it.",
    "request_too_large": "The body is larger than the server takes.",
    "unsupported_media_type": "The body is not in a media type this endpoint takes.",
    "unprocessable": "Well-formed, but contradicts an earlier request.",
    "idempotency_key_reused": "This Idempotency-Key was used for another request.",
    "throttled": "Too many requests: wait the seconds in Retry-After.",
    "limit_reached": "The client holds as much as it may for now: wait the seconds in Retry-After.",
    "too_many_pending_orders": "The customer has as many orders waiting as one may hold.",
    "database_unavailable": "The database is unavailable: retry after the seconds in Retry-After.",
    "busy": "The server is too busy to take this now: retry after the seconds in Retry-After.",
    "server_error": "Something failed on the server.",
    "error": "Any other error.",
}
_CODE = {
    "type": "string",
    "enum": list(ERROR_CODES),
    "description": "Stable, for a program: "
    + "; ".join(f"`{code}`: {meaning}" for code, meaning in ERROR_CODES.items()),
    "example": "not_found",
}

ERROR_COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "description": "What went wrong, for a person, and a code for a program.",
        "properties": {"detail": {"type": "string", "example": "Not found."}, "code": _CODE},
        "required": ["detail", "code"],
    },
    "ValidationError": {
        "type": "object",
        "description": (
            "`detail` and `code` (`invalid`), and beside them field name -> list of messages; for a list "
            "field (items), one object per line in order, `{}` for a good line. A body that is not JSON at "
            "all gives `detail` and `code` alone."
        ),
        "properties": {
            "detail": {"type": "string", "example": "The request is not valid: see the message for each field."},
            "code": _CODE,
        },
        "required": ["detail", "code"],
        "additionalProperties": True,
        "example": {
            "detail": "The request is not valid: see the message for each field.",
            "code": "invalid",
            "items": [{}, {"quantity": ["Ensure this value is less than or equal to 1000."]}],
        },
    },
}

_DESCRIPTIONS = {
    "400": "The request is malformed or breaks a rule: a message per field.",
    "401": "No credentials, or credentials that are not valid.",
    "403": "Signed in, but not allowed (not staff, or a session without its CSRF token).",
    "404": "No such object for this user, or no such page.",
    "405": "This method is not allowed here.",
    "409": "The object's current state does not allow it.",
    "413": "The body is larger than the server takes.",
    "414": "The URL is longer than the web server takes (answered by the web server, as HTML).",
    "415": "The body is not JSON (nor form data where the endpoint takes it).",
    "422": "Well-formed, but contradicts an earlier request with the same Idempotency-Key.",
    "429": "Too many requests: wait the seconds in Retry-After.",
    "503": "The database is unavailable: retry after the seconds in Retry-After.",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}


def _error(status: str) -> dict[str, Any]:
    if status == "414":
        return {"description": _DESCRIPTIONS[status], "content": {"text/html": {"schema": {"type": "string"}}}}
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _VALIDATION if status == "400" else _ERROR}},
    }
    if status in ("429", "503"):
        response["headers"] = _RETRY_AFTER
    return response


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    anonymous = {} in operation.get("security", [{}])
    takes_body = "requestBody" in operation
    one_object = "{" in path
    pages = any(p.get("name") == "page" for p in operation.get("parameters", []))
    statuses = ["429", "503"]
    if takes_body or operation.get("parameters"):
        statuses.append("400")
    if not anonymous:
        statuses += ["401", "403"]
    if one_object or pages:
        statuses.append("404")
    if operation.get("parameters"):
        statuses.append("414")
    if takes_body:
        statuses += ["413", "415"]
    return statuses


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the error responses and their schemas."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(ERROR_COMPONENTS)
    for path, methods in result.get("paths", {}).items():
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation):
                responses.setdefault(status, _error(status))
            for status, response in responses.items():  # declared by the view, body left to us
                if status >= "400" and "content" not in response:
                    response.update(
                        {**_error(status), "description": response.get("description") or _DESCRIPTIONS[status]}
                    )
    return result


class ListSerializerBounds(OpenApiSerializerFieldExtension):
    """A list of nested objects (an order's `items`) documents how many it takes: minItems from
    allow_empty/min_length, maxItems from max_length, as the serializer enforces them."""

    target_class = "rest_framework.serializers.ListSerializer"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        field = self.target
        component = auto_schema.resolve_serializer(field.child, direction)
        schema: dict[str, Any] = {"type": "array", "items": component.ref}
        # A list serializer whose rules live elsewhere (a service) states them as min_items/max_items.
        low = getattr(field, "min_items", None)
        if low is None:
            low = field.min_length if field.min_length is not None else (0 if field.allow_empty else 1)
        high = getattr(field, "max_items", None) or field.max_length
        if low:
            schema["minItems"] = low
        if high is not None:
            schema["maxItems"] = high
        return schema
