"""The web's worker class (the Procfile's `--worker-class config.uvicorn.Worker`): uvicorn under
gunicorn, on asyncio's own event loop and httptools, with the project's own rules for proxies.

Not uvloop, although it spends ~20% less CPU per order (0.55 against 0.67-0.73 ms, measured
with the pipeline running): under a surge, its workers took new connections off the listen
queue at ~15 a second while busy with the open ones, so 1,000+ customers waited 20 s in the
kernel's queue, out of reach of the intake's deadline; asyncio's loop accepts every waiting
connection each time the listening socket is ready (the queue stayed near 0 in the same test)."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    """uvicorn's gunicorn worker, leaving X-Forwarded-For and X-Forwarded-Proto alone: the
    client's address and scheme are read where the project decides whom to trust (NUM_PROXIES,
    TRUST_X_FORWARDED_PROTO), not rewritten for any peer on loopback."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "asyncio", "http": "httptools", "proxy_headers": False, "server_header": False,
        "access_log": False,  # the ASGI front (orders.intake) writes the access line, with the request id
    }  # fmt: skip
