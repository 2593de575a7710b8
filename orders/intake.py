"""The order intake: an ASGI front that takes `POST /api/orders/` at the speed of the stream and
hands every other request to Django (config.asgi).

An order that is well-formed, from a known token, for products on sale, is validated here
without the database (token and catalog from orders.intake_lookups), appended to the intake
stream (orders.intake) together with everything else that arrives meanwhile, and answered
`202 Accepted` with its id, `status: received` and its URL. The orders consumer writes it
(orders.taking) effectively once, in batches.

What it promises:
- taken means kept: the 202 leaves only after Redis answered the XADD (and WAIT, with
  INTAKE_WAIT_REPLICAS); nothing is taken for a client that went away or whose request waited
  past INTAKE_DEADLINE_S; those get nothing, or 503 with Retry-After, and no order;
- the rate limits, Idempotency-Key and MAX_PENDING_ORDERS_PER_CUSTOMER hold as on the
  transactional path (one atomic script in Redis, orders still in intake counted);
- anything it does not take itself goes to Django's view unchanged (its 400s, 401s, the 201 path
  with `Prefer: return=representation`, ORDER_INTAKE=sync), and so does every order while Redis
  is unreachable: placing falls back to the database transaction;
- bodies are bounded (DATA_UPLOAD_MAX_MEMORY_SIZE) for every route before Django reads them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.http.request import split_domain_port, validate_host

from config import throttling
from config.metrics import HTTP_DURATION, HTTP_REQUESTS, INTAKE_ANSWERS
from config.middleware import request_id_from
from eventbus import tracing
from eventbus.codec import encode
from eventbus.events import Envelope
from eventbus.redis_intake import Abandoned, Ambiguous, Expired, IntakeFront, TakeRequest
from eventbus.transport import TransportUnavailable, get_transport, redis_url
from orders.api.serializers import parse_lines
from orders.events import OrderLine, OrderRequested
from orders.intake_lookups import Catalog, Tokens
from orders.services import CENT, MAX_ORDER_TOTAL, derived_order_id, lines_hash, order_lines_errors
from orders.taking import held_key, record_key

__all__ = ["OrderIntake"]

log = logging.getLogger(__name__)
# The web's access line, one per request, in gunicorn's access-log form (config.logs formats it).
access_log = logging.getLogger("gunicorn.access")
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s %(M)sms %({x-request-id}o)s'

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PATH = "/api/orders/"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
HELD_WINDOW_MS = 300_000  # an order still held after this is the consumer's to refuse
# The API's parsers, where a view has others than JSON (the token endpoint takes a form too).
_MEDIA_TYPES = {"/api/auth/token/": (b"application/json", b"application/x-www-form-urlencoded")}


@dataclasses.dataclass(frozen=True)
class Conf:
    """The settings the intake reads on every request, read once per process (Django's lazy
    settings cost a Python call per attribute)."""

    ORDER_INTAKE: str
    DATA_UPLOAD_MAX_MEMORY_SIZE: int | None
    SECURE_SSL_REDIRECT: bool
    ALLOWED_HOSTS: list[str]
    SECURE_HSTS_SECONDS: int
    SECURE_HSTS_INCLUDE_SUBDOMAINS: bool
    THROTTLES_ENABLED: bool
    MAX_PENDING_ORDERS_PER_CUSTOMER: int
    INTAKE_DEADLINE_S: float
    INTAKE_MAX_WAITING: int
    INTAKE_WAIT_REPLICAS: int
    INTAKE_WAIT_TIMEOUT_MS: int
    INTAKE_RECORD_TTL_S: int


@functools.cache
def conf() -> Conf:
    return Conf(**{field.name: getattr(settings, field.name) for field in dataclasses.fields(Conf)})


class _Delegate(Exception):
    """Not for the intake: Django answers it (with the body read so far)."""


class OrderIntake:
    """The ASGI application of the web (config.asgi): the intake for orders, Django for the rest."""

    def __init__(self, django: ASGIApp) -> None:
        self.django = django
        self.tokens = Tokens()
        self.catalog = Catalog()
        self._front: IntakeFront | None = None

    @property
    def front(self) -> IntakeFront:
        if self._front is None:
            self._front = IntakeFront(
                redis_url(), wait_replicas=conf().INTAKE_WAIT_REPLICAS,
                wait_timeout_ms=conf().INTAKE_WAIT_TIMEOUT_MS,
            )  # fmt: skip
        return self._front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self.django(scope, receive, send)
            return
        if not access_log.isEnabledFor(logging.INFO):
            await self._http(scope, receive, send)
            return
        started, answered = time.monotonic(), {}

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
                answered["request_id"] = next(
                    (v.decode("latin-1") for k, v in message.get("headers", ()) if k.lower() == b"x-request-id"), "-"
                )
            await send(message)

        try:
            await self._http(scope, receive, noted)
        finally:
            _log_access(scope, answered, started)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        limit = conf().DATA_UPLOAD_MAX_MEMORY_SIZE
        if length is not None and limit is not None and (not length.isdigit() or int(length) > limit):
            await _too_large(scope, send, limit)
            return
        if _unsupported_media(scope, headers):
            media = headers[b"content-type"].decode("latin-1")
            await _send_json(send, 415, {"detail": f'Unsupported media type "{media}" in request.',
                                         "code": "unsupported_media_type"}, {"connection": "close"}, False)  # fmt: skip
            return
        if scope["path"] == PATH and scope["method"] == "POST" and self._ours(scope, headers):
            await self._order(scope, headers, receive, send)
            return
        if length is None and scope["method"] not in ("GET", "HEAD", "OPTIONS") and limit is not None:
            try:  # a chunked body: bounded here (Django's handler reads all of it first)
                body = await _read_body(receive, limit)
            except Abandoned:
                return
            if body is None:
                await _too_large(scope, send, limit)
                return
            receive = _replaying(body, receive)
        await self.django(scope, receive, send)

    def _ours(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        """Requests the intake takes: an API client's JSON with a token, over https when the site
        redirects http, to a host the site serves, that did not ask for the 201 path."""
        if conf().ORDER_INTAKE != "stream":
            return False
        if not headers.get(b"authorization", b"").startswith(b"Token "):
            return False
        if headers.get(b"content-type", b"").split(b";")[0].strip() != b"application/json":
            return False
        if b"return=representation" in headers.get(b"prefer", b""):
            return False
        if conf().SECURE_SSL_REDIRECT and not _secure(scope, headers):
            return False
        host, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
        return bool(host) and validate_host(host, conf().ALLOWED_HOSTS)

    async def _order(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send) -> None:
        # When the server first read the request (config.uvicorn), else now.
        arrived = scope.get("extensions", {}).get("eventshop.arrived") or time.monotonic()
        sent_id = headers.get(b"x-request-id")
        request_id = request_id_from(None if sent_id is None else sent_id.decode("latin-1"))
        try:
            body = await _read_body(receive, conf().DATA_UPLOAD_MAX_MEMORY_SIZE)
        except Abandoned:
            return
        if body is None:
            await _too_large(scope, send, conf().DATA_UPLOAD_MAX_MEMORY_SIZE)
            return
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        try:
            with tracing.serving("POST", "api/orders/"):
                answer = await self._take(headers, body, request_id, arrived, gone)
        except _Delegate:
            answer = None
        except Abandoned:
            INTAKE_ANSWERS.labels(outcome="abandoned").inc()
            return
        finally:
            watcher.cancel()
        if answer is None:  # Django's view answers: the 400s and 401s, or the database path
            await self.django(scope, _replaying(body, receive), send)
            return
        status, payload, extra = answer
        await _send_json(send, status, payload, {"x-request-id": str(request_id), **extra}, _secure(scope, headers))
        _count_http(status, time.monotonic() - arrived)

    async def _take(
        self, headers: dict[bytes, bytes], body: bytes, request_id: uuid.UUID, arrived: float, gone: asyncio.Event
    ) -> tuple[int, Any, dict[str, str]] | None:
        if time.monotonic() > arrived + conf().INTAKE_DEADLINE_S:  # waited out already: refuse cheaply
            INTAKE_ANSWERS.labels(outcome="expired").inc()
            return _busy("Your order waited too long to be taken and was not placed; please retry.")
        lines = _lines(body)
        sent_key = headers.get(b"idempotency-key")
        key = "" if sent_key is None else sent_key.decode("latin-1")
        if lines is None or (sent_key is not None and not (_KEY.fullmatch(key) and key.strip())):
            raise _Delegate  # the view says what is wrong
        try:
            customer_id = await self.tokens.user_id(headers[b"authorization"][6:].decode("latin-1").strip())
            catalog = await self.catalog.current()
        except DatabaseError:
            raise _Delegate from None  # the view answers 503 with Retry-After
        if customer_id is None or any(catalog.get(p) is None for p, _ in lines):
            raise _Delegate  # a 401, or a product the view names in its 400
        total = sum((catalog[p].price * q for p, q in lines), Decimal("0.00")).quantize(CENT)
        if total > MAX_ORDER_TOTAL:
            raise _Delegate
        if self.front.waiting >= conf().INTAKE_MAX_WAITING:
            INTAKE_ANSWERS.labels(outcome="busy").inc()
            return _busy("Too many orders are arriving at once; please retry in a moment.")

        order_id = derived_order_id(customer_id, key) if key else uuid.uuid4()
        request_hash = lines_hash(lines) if key else ""
        event = OrderRequested(
            order_id=order_id, customer_id=customer_id, items=tuple(OrderLine(p, q) for p, q in lines),
            idempotency_key=key, request_hash=request_hash,
        )  # fmt: skip
        envelope = Envelope.new(event, aggregate_id=str(order_id), correlation_id=request_id)
        record = _record(envelope, catalog, total)
        transport = get_transport()
        request = TakeRequest(
            stream=transport.key(event.stream), record_key=transport.key(record_key(order_id)),
            held_key=transport.key(held_key(customer_id)), member=str(order_id), type=event.type,
            body=encode(envelope), record=json.dumps(record, separators=(",", ":")),
            record_ttl_s=conf().INTAKE_RECORD_TTL_S, held_window_ms=HELD_WINDOW_MS,
            held_limit=conf().MAX_PENDING_ORDERS_PER_CUSTOMER,
            idempotency_key=transport.key(f"orders:intake:key:{customer_id}:{_digest(key)}{settings.INTAKE_SLOT_TAG}")
            if key else "",
            idempotency_value=f"{request_hash} {order_id}" if key else "",
            throttles=_throttles(customer_id), deadline=arrived + conf().INTAKE_DEADLINE_S,
            wanted=lambda: not gone.is_set(),
        )  # fmt: skip
        try:
            outcome = await self.front.take(request)
        except Expired:
            INTAKE_ANSWERS.labels(outcome="expired").inc()
            return _busy("Your order waited too long to be taken and was not placed; please retry.")
        except Ambiguous as exc:
            log.warning("order intake: Redis did not confirm a request (%s); answered 503", exc)
            INTAKE_ANSWERS.labels(outcome="unconfirmed").inc()
            return _busy("Your order could not be confirmed as taken; retry with the same Idempotency-Key.")
        except TransportUnavailable as exc:
            log.warning("order intake: Redis is unreachable (%s); placing through the database", exc)
            INTAKE_ANSWERS.labels(outcome="fallback").inc()
            raise _Delegate from None
        if outcome.kind == "taken" and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "order %s taken onto %s (entry %s)", order_id, event.stream, outcome.value,
                extra={"aggregate_id": str(order_id), "request_id": str(request_id),
                       "correlation_id": str(request_id), "event_id": str(envelope.event_id)},
            )  # fmt: skip
        return await self._answer(outcome.kind, outcome.value, request.record, order_id, request_hash)

    async def _answer(
        self, kind: str, value: str, record: str, order_id: uuid.UUID, request_hash: str
    ) -> tuple[int, Any, dict[str, str]] | None:
        INTAKE_ANSWERS.labels(outcome=kind).inc()
        if kind == "taken":
            return 202, record.encode(), {"location": f"{PATH}{order_id}/"}  # the record is the answer
        if kind == "throttled":
            wait = max(1, int(value))
            return 429, {"detail": f"Request was throttled. Expected available in {wait} seconds.",
                         "code": "throttled"}, {"retry-after": str(wait)}  # fmt: skip
        if kind == "held":
            return 429, {
                "detail": f"You have {value} orders waiting for confirmation, the most one customer may hold; "
                "place this one once they are confirmed or rejected (usually within seconds).",
                "code": "too_many_pending_orders",
            }, {"retry-after": "5"}  # fmt: skip
        earlier_hash, _, earlier_id = value.partition(" ")
        if earlier_hash != request_hash:
            return 422, {"detail": "This Idempotency-Key was already used for an order with other items; "
                         "use a new key for a different order.", "code": "idempotency_key_reused"}, {}  # fmt: skip
        stored = await self.front.get(get_transport().key(record_key(earlier_id)))
        if stored is None:
            raise _Delegate  # long taken: the view answers with the order as the database has it
        return 202, stored, {"location": f"{PATH}{earlier_id}/", "idempotent-replayed": "true"}

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._front is not None:
                    await self._front.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


_HTTP_COUNTS: dict[int, Any] = {}
_HTTP_DURATION = HTTP_DURATION.labels("order-list", "POST")


def _count_http(status: int, seconds: float) -> None:
    """The web's HTTP metrics (config.metrics) for an answer the intake gave itself, under the
    view's name, as Django's middleware counts the others."""
    count = _HTTP_COUNTS.get(status)
    if count is None:
        count = _HTTP_COUNTS.setdefault(status, HTTP_REQUESTS.labels("order-list", "POST", str(status)))
    count.inc()
    _HTTP_DURATION.observe(seconds)


def _log_access(scope: Scope, answered: dict[str, Any], started: float) -> None:
    """One access line, with the fields gunicorn's access log gives (config.logs.AccessFields)."""
    duration_s = time.monotonic() - started
    path = scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client") or ("-", 0)
    atoms = {
        "h": client[0], "m": scope.get("method"), "U": path, "q": query, "s": str(answered.get("status", "-")),
        "r": f"{scope.get('method')} {path}{'?' + query if query else ''} HTTP/{scope.get('http_version', '1.1')}",
        "D": int(duration_s * 1_000_000), "M": int(duration_s * 1000),
        "{x-request-id}o": answered.get("request_id", "-"),
    }  # fmt: skip
    access_log.info(ACCESS_FORMAT, atoms)


def _unsupported_media(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """A body the API's only parser (JSON) would refuse with 415 once Django's ASGI handler had
    read all of it: refused here before a byte of it is read, as under a WSGI server."""
    if not scope["path"].startswith("/api/") or scope["method"] not in ("POST", "PUT", "PATCH"):
        return False
    media = headers.get(b"content-type")
    if media is None or headers.get(b"content-length") in (None, b"0"):
        return False
    return media.split(b";")[0].strip().lower() not in _MEDIA_TYPES.get(scope["path"], (b"application/json",))


def _lines(body: bytes) -> list[tuple[int, int]] | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    lines = parse_lines(data)
    if lines is None or order_lines_errors(lines):
        return None
    return lines


def _throttles(customer_id: int) -> list[tuple[str, int, int]]:
    """The API's rate limits on placing an order (config.throttling), as (key, limit, window)."""
    if not conf().THROTTLES_ENABLED:
        return []
    return throttling.order_windows(customer_id, time.time())


def _record(envelope: Envelope[OrderRequested], catalog: dict, total: Decimal) -> dict[str, Any]:
    """The order as `GET /api/orders/{id}/` shows it until the database has it."""
    request = envelope.payload
    at = _iso(envelope.occurred_at)
    items = []
    for line in request.items:
        product = catalog[line.product_id]
        items.append({
            "product_id": line.product_id, "sku": product.sku, "name": product.name, "quantity": line.quantity,
            "unit_price": f"{product.price:.2f}", "line_total": f"{product.price * line.quantity:.2f}",
        })  # fmt: skip
    return {
        "id": str(request.order_id), "status": "received", "customer_id": request.customer_id, "items": items,
        "total": f"{total:.2f}", "rejection_reason": "", "created_at": at, "updated_at": at,
        "confirmed_at": None, "rejected_at": None, "cancelled_at": None, "url": f"{PATH}{request.order_id}/",
    }  # fmt: skip


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _iso(value: dt.datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _busy(detail: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return 503, {"detail": detail, "code": "busy"}, {"retry-after": "2"}


def _secure(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    if scope.get("scheme") == "https":
        return True
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        return headers.get(name, b"").decode("latin-1").split(",")[0].strip() == proxy[1]
    return False


async def _read_body(receive: Receive, limit: int | None) -> bytes | None:
    """The whole body, or None once it grows past `limit` (what is left is never read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Abandoned()
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    message = await receive()
    if message["type"] == "http.disconnect":
        gone.set()


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives Django the body read already, then the connection's own events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, status: int, payload: Any, headers: dict[str, str], secure: bool) -> None:
    """Answer `payload` (JSON already encoded, as bytes, or a value to encode)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    raw = [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
        (b"vary", b"Accept, Authorization"),
    ]  # fmt: skip
    if secure and conf().SECURE_HSTS_SECONDS:
        hsts = f"max-age={conf().SECURE_HSTS_SECONDS}"
        if conf().SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        raw.append((b"strict-transport-security", hsts.encode()))
    raw += [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    detail = f"The request body is larger than the limit of {limit} bytes."
    if scope["path"].startswith("/api/"):
        await _send_json(send, 413, {"detail": detail, "code": "request_too_large"}, {"connection": "close"}, False)
        return
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": detail.encode()})
