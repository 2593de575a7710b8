"""The web's worker class (the Procfile's `--worker-class config.uvicorn.Worker`): uvicorn under
gunicorn, on uvloop and httptools, with the project's own rules for proxies."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    """uvicorn's gunicorn worker, leaving X-Forwarded-For and X-Forwarded-Proto alone: the
    client's address and scheme are read where the project decides whom to trust (NUM_PROXIES,
    TRUST_X_FORWARDED_PROTO), not rewritten for any peer on loopback."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop", "http": "httptools", "proxy_headers": False, "server_header": False,
        "access_log": False,  # the ASGI front (orders.intake) writes the access line, with the request id
    }  # fmt: skip
