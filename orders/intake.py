"""The order intake: an ASGI front that takes `POST /api/orders/` for the web worker's order
desk (orders.desk) and hands every other request to Django (config.asgi).

An order that is well-formed JSON from a known token goes to the desk, which places it together
with the others arriving meanwhile in one database transaction (orders.placing, the one writer)
and answers each `201 Created` with the order once that transaction committed, or with the
refusal the placing rules give (the same bodies as Django's view). Anything else (a body the
serializer must explain, an unknown token, ORDER_INTAKE=sync) goes to Django's view unchanged.

What it promises:
- answered means kept: a 201 leaves only after the order is committed in the database; Redis
  carries its events and nothing else, so a Redis restarted empty, flushed or failed over loses
  no order anyone was told about;
- nobody gets an order after they stopped waiting: a request whose client left, or that waited
  past INTAKE_DEADLINE_S, is answered 503 with Retry-After (or nothing) and never placed;
- bodies are bounded (DATA_UPLOAD_MAX_MEMORY_SIZE) for every route before Django reads them;
- Django gets WEB_DJANGO_AT_ONCE requests at a time; the others wait their turn (config.turns),
  at most WEB_DJANGO_WAIT_S, and the probes and metrics never wait.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve

from config.metrics import HTTP_DURATION, HTTP_REQUESTS, INTAKE_ANSWERS, series_of
from config.middleware import request_id_from
from config.requesthead import read_head
from config.turns import Turns
from eventbus.redis.durability import say_what_redis_keeps
from eventbus.runtime import tracing
from eventbus.store import outbox
from orders.api.serializers import parse_lines
from orders.desk import Desk, Ticket, busy, expired
from orders.intake_lookups import Tokens
from orders.placing import PlaceRequest, order_lines_errors

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
    INTAKE_DEADLINE_S: float
    INTAKE_MAX_WAITING: int
    WEB_DJANGO_AT_ONCE: int
    WEB_DJANGO_WAIT_S: float
    STATIC_URL: str


@functools.cache
def conf() -> Conf:
    return Conf(**{field.name: getattr(settings, field.name) for field in dataclasses.fields(Conf)})


class _Delegate(Exception):
    """Not for the intake: Django answers it (with the body read so far)."""


class Abandoned(Exception):
    """The client went away before its order was handed to the database."""


class OrderIntake:
    """The ASGI application of the web (config.asgi): the intake for orders, Django for the rest."""

    def __init__(self, django: ASGIApp) -> None:
        self.django = django
        self.tokens = Tokens(lambda fn, *args: self.desk.query(fn, *args))
        self._desk: Desk | None = None
        # Django's requests, WEB_DJANGO_AT_ONCE at a time (config/settings.py says why).
        at_once, wait_s = conf().WEB_DJANGO_AT_ONCE, conf().WEB_DJANGO_WAIT_S
        self.turns = Turns(at_once, wait_s) if at_once else None
        self._never_wait = (*_NEVER_WAIT, conf().STATIC_URL)

    @property
    def desk(self) -> Desk:
        if self._desk is None:
            self._desk = Desk()
        return self._desk

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
        if refused := read_head(_mutable_headers(scope)):
            await _send_json(send, *refused, {"connection": "close"}, False)
            return
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
        if self.turns is None or scope["path"].startswith(self._never_wait):
            await self.django(scope, receive, send)
            return
        try:
            await self.turns.take()
        except TimeoutError:
            await _waited_out(scope, headers, send)
            return
        try:
            await self.django(scope, receive, send)
        finally:
            self.turns.give_back()

    def _ours(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        """Requests the intake takes: an API client's JSON with a token, over https when the site
        redirects http, to a host the site serves."""
        if conf().ORDER_INTAKE != "desk":
            return False
        if not headers.get(b"authorization", b"").startswith(b"Token "):
            return False
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() != b"application/json":
            return False
        if conf().SECURE_SSL_REDIRECT and not _secure(scope, headers):
            return False
        host, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
        return bool(host) and validate_host(host, conf().ALLOWED_HOSTS)

    async def _order(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send) -> None:
        # When the server first read the request (config.uvicorn), else now.
        arrived = scope.get("extensions", {}).get("eventshop.arrived") or time.monotonic()
        request_id = _request_id(headers)
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
        except Abandoned:  # the desk counted it
            return
        finally:
            watcher.cancel()
        if answer is None:  # Django's view answers: the 400s, the 401s, the database's 503
            await self.django(scope, _replaying(body, receive), send)
            return
        status, payload, extra = answer
        await _send_json(send, status, payload, {"x-request-id": str(request_id), **extra}, _secure(scope, headers))
        _count_http(status, time.monotonic() - arrived)

    async def _take(
        self, headers: dict[bytes, bytes], body: bytes, request_id: uuid.UUID, arrived: float, gone: asyncio.Event
    ) -> tuple[int, Any, dict[str, str]] | None:
        deadline = arrived + conf().INTAKE_DEADLINE_S
        if time.monotonic() > deadline:  # waited out already: refuse cheaply
            return expired()
        lines = _lines(body)
        sent_key = headers.get(b"idempotency-key")
        key = "" if sent_key is None else sent_key.decode("latin-1")
        if lines is None or (sent_key is not None and not (_KEY.fullmatch(key) and key.strip())):
            raise _Delegate  # the view says what is wrong
        token = headers[b"authorization"][6:].decode("latin-1").strip()
        try:
            customer_id = await self.tokens.user_id(token)
        except TimeoutError:  # the look-up is held up (a locked table?): no order would be placed in time
            return expired()
        except DatabaseError:
            raise _Delegate from None  # the view answers 503 with Retry-After
        if customer_id is None:
            raise _Delegate  # the view's 401
        if self.desk.waiting >= conf().INTAKE_MAX_WAITING:
            INTAKE_ANSWERS.labels(outcome="busy").inc()
            return busy("Too many orders are arriving at once; please retry in a moment.")
        ticket = Ticket(
            PlaceRequest(customer_id, tuple(lines), key, outbox.Origin(request_id, tracing.context_for(None))),
            deadline=deadline,
            wanted=lambda: not gone.is_set(),
        )  # fmt: skip
        answer = await self.desk.place(ticket)
        if answer is None:
            raise Abandoned()
        return answer

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if conf().ORDER_INTAKE == "desk":
                    self.desk.connect()
                await asyncio.get_running_loop().run_in_executor(None, say_what_redis_keeps, "web")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._desk is not None:
                    await self._desk.close()
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


def _mutable_headers(scope: Scope) -> Scope:
    if not isinstance(scope["headers"], list):
        scope["headers"] = list(scope["headers"])
    return scope


def _lines(body: bytes) -> list[tuple[int, int]] | None:
    try:  # UTF-8 only, as Django's parser reads it (json.loads would take UTF-16 and UTF-32 too)
        data = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    lines = parse_lines(data)
    if lines is None or order_lines_errors(lines):
        return None
    return lines


def _request_id(headers: dict[bytes, bytes]) -> uuid.UUID:
    """The request's id: the client's X-Request-ID if it is one, else a new one (config.middleware)."""
    sent_id = headers.get(b"x-request-id")
    return request_id_from(None if sent_id is None else sent_id.decode("latin-1"))


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
        (b"vary", b"Accept, Authorization"), *_security_headers(secure),
    ]  # fmt: skip
    raw += [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


@functools.cache
def _security_headers(secure: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The headers Django's SecurityMiddleware adds to every answer (X-Content-Type-Options,
    Referrer-Policy, Cross-Origin-Opener-Policy; Strict-Transport-Security over https), asked of
    it once per process, so the intake's answers carry what Django's carry under the same settings."""

    class _Request:
        def is_secure(self) -> bool:
            return secure

    response = SecurityMiddleware(lambda request: HttpResponse()).process_response(_Request(), HttpResponse())
    return tuple(
        (name.lower().encode(), value.encode("latin-1")) for name, value in response.items() if name != "Content-Type"
    )


# What never waits for a turn at Django: the probes and the metrics answer under any crowd (and
# static files, under STATIC_URL, use no database connection).
_NEVER_WAIT = ("/healthz", "/readyz", "/metrics")
WAITED_OUT = "The server is too busy to answer this now; please retry shortly."


async def _waited_out(scope: Scope, headers: dict[bytes, bytes], send: Send) -> None:
    """The answer to a request that waited WEB_DJANGO_WAIT_S for its turn at Django: 503 `busy`
    with Retry-After, counted under its view as Django's middleware counts the others."""
    status, payload, extra = busy(WAITED_OUT)
    extra = {"x-request-id": str(_request_id(headers)), **extra}
    await _send_json(send, status, payload, extra, _secure(scope, headers))
    try:
        match = resolve(scope["path"])
    except Resolver404:
        match = None
    HTTP_REQUESTS.labels(*series_of(match, scope["method"]), str(status)).inc()


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    detail = f"The request body is larger than the limit of {limit} bytes."
    if scope["path"].startswith("/api/"):
        await _send_json(send, 413, {"detail": detail, "code": "request_too_large"}, {"connection": "close"}, False)
        return
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": detail.encode()})
