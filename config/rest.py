"""The classes DRF's settings name: the JSON parser, the browsable API's renderer, pagination.
Apart from config.api because DRF imports them while it builds APIView, so this module must not
import rest_framework.views (or anything that does) itself."""

from __future__ import annotations

import json
import re
from typing import Any

from rest_framework import exceptions, pagination, parsers, renderers

__all__ = ["MAX_INT_DIGITS", "MAX_JSON_DEPTH", "BrowsableAPIRenderer", "JSONParser", "Pagination", "TooLongNumber"]

# No request this API takes nests deeper than 3; anything far deeper is an attack on the parser
# (a body nested ~1,000 deep makes Python's json raise RecursionError) or on whatever walks it.
MAX_JSON_DEPTH = 32


# Python refuses to turn a longer digit string into an int (sys.get_int_max_str_digits()), with a
# message naming its own internals; a number that long is no quantity or id anyway.
MAX_INT_DIGITS = 4000


class TooLongNumber:
    """What the parser makes of an integer with more than MAX_INT_DIGITS digits: no field takes
    it (not an int, not a string), so the serializer answers with its own message for that field."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __str__(self) -> str:
        return f"a number of {self.digits} digits"

    __repr__ = __str__


def _parse_int(text: str) -> int | TooLongNumber:
    if len(text) > MAX_INT_DIGITS:
        return TooLongNumber(len(text.lstrip("-")))
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 with a message about the document, never one of Python's
    internals: a document nested deeper than MAX_JSON_DEPTH (not a RecursionError and a 500),
    bytes that are not UTF-8, NaN or Infinity, and integers too long for Python (each one a
    TooLongNumber, which the field it is given to refuses)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding)
            data = json.loads(text, parse_int=_parse_int, parse_constant=_no_constant)
        except RecursionError:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels") from None
        except UnicodeDecodeError:
            raise exceptions.ParseError(f"JSON parse error - the body is not {encoding} text") from None
        except json.JSONDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc.msg}: line {exc.lineno} column {exc.colno}") from None
        except (ValueError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
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


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's browsable API with the raw-data (JSON) form only: its HTML forms post multipart,
    which the API refuses, and cannot hold a list (an order's lines)."""

    def get_rendered_html_form(self, data: Any, view: Any, method: str, request: Any) -> Any:
        if method in ("POST", "PUT", "PATCH"):
            return None
        return super().get_rendered_html_form(data, view, method, request)
