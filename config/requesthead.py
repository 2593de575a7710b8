"""One reading of a request's head, for every path of the web (the order intake and Django alike):
the ASGI front (orders.intake) calls `read_head` before anything else looks at a request.

- A header that must appear once (Authorization, Content-Type, Content-Length, Host,
  Idempotency-Key) sent twice is a 400: two readers could each take a different one.
- A media type is case-insensitive: `APPLICATION/JSON` is rewritten `application/json` in the
  request's headers, so every parser downstream reads the same thing.
- A body in a charset other than UTF-8 is a 415 (JSON is UTF-8, RFC 8259).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SINGLE", "read_head"]

SINGLE = (b"authorization", b"content-type", b"content-length", b"host", b"idempotency-key")
_UTF8 = (b"utf-8", b"utf8")


def read_head(scope: dict[str, Any]) -> tuple[int, dict[str, str]] | None:
    """Check the request's head (and normalise its media type in place); the refusal as (status,
    JSON body), or None if the request may go on."""
    seen: set[bytes] = set()
    headers = scope["headers"]
    for i, (name, value) in enumerate(headers):
        if name in SINGLE:
            if name in seen:
                title = name.decode("latin-1").title()
                return 400, {"detail": f"The {title} header was sent more than once; send it once.",
                             "code": "duplicate_header"}  # fmt: skip
            seen.add(name)
        if name == b"content-type":
            media, _, params = value.partition(b";")
            charset = _param(params, b"charset")
            if charset is not None and charset.lower() not in _UTF8:
                return 415, {"detail": f"The charset {charset.decode('latin-1')!r} is not accepted: send UTF-8.",
                             "code": "unsupported_media_type"}  # fmt: skip
            lowered = media.strip().lower()
            if lowered != media:
                headers[i] = (name, lowered + (b";" + params if params else b""))
    return None


def _param(params: bytes, wanted: bytes) -> bytes | None:
    for part in params.split(b";"):
        key, sep, value = part.partition(b"=")
        if sep and key.strip().lower() == wanted:
            return value.strip().strip(b'"')
    return None
