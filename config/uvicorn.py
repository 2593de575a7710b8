"""The web's worker class (the Procfile's `--worker-class config.uvicorn.Worker`): uvicorn under
gunicorn, on asyncio's own event loop and httptools, with the project's own rules for proxies.

Not uvloop, although it spends ~20% less CPU per order (0.55 against 0.67-0.73 ms, measured
with the pipeline running): under a surge, its workers took new connections off the listen
queue at ~15 a second while busy with the open ones, so 1,000+ customers waited 20 s in the
kernel's queue, out of reach of the intake's deadline; asyncio's loop accepts every waiting
connection each time the listening socket is ready (the queue stayed near 0 in the same test)."""

from __future__ import annotations

import functools
import json
import time
from asyncio import TimerHandle
from typing import Any, ClassVar

import httptools
from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

ARRIVED = "eventshop.arrived"


@functools.cache
def limits() -> tuple[int, int, int, float, float]:
    """(request line, header fields, bytes per field, seconds for the head, seconds for the
    body), read from the settings once per worker."""
    return (
        settings.WEB_REQUEST_LINE_MAX, settings.WEB_HEADER_FIELDS_MAX, settings.WEB_HEADER_FIELD_MAX,
        settings.WEB_HEADER_TIMEOUT_S, settings.WEB_BODY_TIMEOUT_S,
    )  # fmt: skip


class _Refused(Exception):
    """Raised from a parser callback: the request breaks a limit (its answer is in `refusal`)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the web's own limits, whatever flags the server got:

    - a request line longer than WEB_REQUEST_LINE_MAX is answered 414, more than
      WEB_HEADER_FIELDS_MAX header fields or one longer than WEB_HEADER_FIELD_MAX 431, and so is a
      head (line and fields) past what those allow, counted as its bytes arrive: a 100 MB header
      is refused after its first kilobytes, never read whole;
    - a client that has not sent its whole head WEB_HEADER_TIMEOUT_S after its first byte (or
      after connecting), or its whole body WEB_BODY_TIMEOUT_S after its head, is answered 408 (if
      nothing was answered yet) and closed;
    - each request is stamped with the moment its first bytes were parsed
      (`scope["extensions"]["eventshop.arrived"]`, time.monotonic()): under a surge a request can
      wait seconds in the event loop before its handler runs, and the order intake's deadline
      counts from its arrival, not from when the handler got to it.
    """

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head, self._head_bytes, self._fields = True, 0, 0
        self._refusal: tuple[int, str, str] | None = None
        self._timer: TimerHandle | None = None
        self._arm(limits()[3])

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        line_max, fields_max, field_max, _, _ = limits()
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > line_max + fields_max * (field_max + 4) + 4:
                self._refuse(431, "The request's header fields are too large.", "request_header_fields_too_large")
                return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {ARRIVED: time.monotonic()}  # type: ignore[typeddict-unknown-key]
        self._in_head, self._fields = True, 0
        if self._timer is None:
            self._arm(limits()[3])

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > limits()[0]:
            self._refusal = (414, "The request line is too long.", "request_uri_too_long")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > limits()[1] or len(name) + len(value) > limits()[2]:
            self._refusal = (431, "Too many header fields, or one too large.", "request_header_fields_too_large")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._arm(limits()[4])
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        if seconds > 0:
            self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self._in_head and self.cycle.response_started:
            self.transport.close()  # the answer is on its way: nothing more can be said
            return
        self._refuse(408, "The request took too long to arrive.", "request_timeout")

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg, "bad_request")

    def _refuse(self, status: int, detail: str, code: str) -> None:
        """Answer `status` with the API's JSON error and close the connection."""
        body = json.dumps({"detail": detail, "code": code}).encode()
        reason = {
            400: b"Bad Request",
            408: b"Request Timeout",
            414: b"URI Too Long",
            431: b"Request Header Fields Too Large",
        }[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason, len(body), body)
        )
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


class Worker(UvicornWorker):
    """uvicorn's gunicorn worker, leaving X-Forwarded-For and X-Forwarded-Proto alone: the
    client's address and scheme are read where the project decides whom to trust (NUM_PROXIES,
    TRUST_X_FORWARDED_PROTO), not rewritten for any peer on loopback."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "asyncio", "http": "config.uvicorn:GuardedHttpToolsProtocol",
        "proxy_headers": False, "server_header": False,
        "access_log": False,  # the ASGI front (orders.intake) writes the access line, with the request id
    }  # fmt: skip
