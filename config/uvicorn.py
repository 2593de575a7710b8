"""The web's worker class (the Procfile's `--worker-class config.uvicorn.Worker`): uvicorn under
gunicorn, on asyncio's own event loop and httptools, with the project's own rules for proxies.

Not uvloop, although it spends ~20% less CPU per order (0.55 against 0.67-0.73 ms, measured
with the pipeline running): under a surge, its workers took new connections off the listen
queue at ~15 a second while busy with the open ones, so 1,000+ customers waited 20 s in the
kernel's queue, out of reach of the intake's deadline; asyncio's loop accepts every waiting
connection each time the listening socket is ready (the queue stayed near 0 in the same test)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

ARRIVED = "eventshop.arrived"


class StampedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, stamping each request with the moment its first bytes were
    parsed (`scope["extensions"]["eventshop.arrived"]`, time.monotonic()): under a surge a
    request can wait seconds in the event loop before its handler runs, and the intake's
    deadline counts from its arrival, not from when the handler got to it."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {ARRIVED: time.monotonic()}  # type: ignore[typeddict-unknown-key]


class Worker(UvicornWorker):
    """uvicorn's gunicorn worker, leaving X-Forwarded-For and X-Forwarded-Proto alone: the
    client's address and scheme are read where the project decides whom to trust (NUM_PROXIES,
    TRUST_X_FORWARDED_PROTO), not rewritten for any peer on loopback."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "asyncio", "http": "config.uvicorn:StampedHttpToolsProtocol",
        "proxy_headers": False, "server_header": False,
        "access_log": False,  # the ASGI front (orders.intake) writes the access line, with the request id
    }  # fmt: skip
