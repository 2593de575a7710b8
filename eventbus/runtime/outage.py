"""How the bus's long-running processes ride out a Redis or database outage: one clear log line
when a server stops answering, exponential backoff (capped) between attempts, one line when it
is back."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connection

from eventbus.redis.transport import unreachable_message

__all__ = ["Outage"]


def database_display_url() -> str:
    """The default database's URL without its password, for messages people read."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = f"{db['USER']}@" if db["USER"] else ""
    return f"postgres://{user}{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def database_unreachable_message(exc: BaseException) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return (
        f"DATABASE_URL is unreachable ({database_display_url()}) ({reason}): "
        "start the database server or fix DATABASE_URL"
    )


class Outage:
    def __init__(self, logger: logging.Logger, *, consequence: str, stopping: threading.Event) -> None:
        self._log = logger
        self._consequence = consequence
        self._stopping = stopping
        self._current: str | None = None
        self._delay = 0.0
        self.cap_s = 5.0

    def failed(self, what: str, exc: BaseException, *, redis_url: str = "") -> None:
        """Record a failure of `what` ("Redis" or "database") and wait before the next try."""
        if self._current != what:
            message = (
                unreachable_message(redis_url or settings.REDIS_URL, exc)
                if what == "Redis"
                else database_unreachable_message(exc)
            )
            self._log.error("%s; %s", message, self._consequence)
            self._current = what
            self._delay = 0.1
        else:
            self._delay = min(self._delay * 2, self.cap_s)
        self._stopping.wait(self._delay)

    def recovered(self, who: str) -> None:
        if self._current is not None:
            self._log.warning("%s is reachable again; %s resumes", self._current, who)
            self._current = None
