"""A circuit breaker for best-effort calls to Redis made on someone else's time (right after a
commit, from a request): after a failure, skip further attempts for a moment, so an outage
costs a process one failed connection per second, not one per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar

__all__ = ["Breaker"]

log = logging.getLogger(__name__)


class Breaker:
    """One breaker per kind of call (publishing on commit, waking the relay)."""

    instances: ClassVar[list[Breaker]] = []

    def __init__(self, what: str, pause_s: float = 1.0) -> None:
        self.what = what
        self.pause_s = pause_s
        self.open_until = 0.0
        Breaker.instances.append(self)

    def call(self, fn: Callable[[], object], *errors: type[BaseException]) -> bool:
        """Run fn unless the breaker is open; True if it ran and did not raise one of `errors`
        (any Exception if none given), which are logged, not raised."""
        now = time.monotonic()
        if now < self.open_until:
            return False
        try:
            fn()
        except Exception as exc:
            if errors and not isinstance(exc, errors):
                raise
            self.open_until = now + self.pause_s
            log.warning("%s: %s", self.what, exc)
            return False
        return True

    @classmethod
    def close_all(cls) -> None:
        """Let every breaker try again at once (the settings that pointed at Redis changed)."""
        for breaker in cls.instances:
            breaker.open_until = 0.0
