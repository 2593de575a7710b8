"""Token authentication with a short per-process cache, so the hot API path does not query the
token table on every request. The rule of that cache (how long a token is remembered, that a
failed look-up never is, how large it grows) is TokenMemory's, for the API's views and for the
order intake (orders.intake_lookups) alike."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

from django.conf import settings
from rest_framework.authentication import TokenAuthentication

__all__ = ["CachedTokenAuthentication", "TokenMemory"]

T = TypeVar("T")


class TokenMemory(Generic[T]):
    """Token key -> what it authenticated, remembered AUTH_TOKEN_CACHE_S seconds (0 remembers
    nothing): a deleted token or deactivated user stops working within that time. Only found
    tokens are kept (a failed look-up is asked again); past max_entries the memory starts over."""

    max_entries = 100_000

    def __init__(self) -> None:
        self._kept: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        hit = self._kept.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def keep(self, key: str, value: T) -> None:
        ttl = settings.AUTH_TOKEN_CACHE_S
        if ttl <= 0:
            return
        with self._lock:
            if len(self._kept) >= self.max_entries:
                self._kept.clear()
            self._kept[key] = (time.monotonic() + ttl, value)

    def forget(self) -> None:
        with self._lock:
            self._kept.clear()


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication, remembering token -> (user, token) in a TokenMemory."""

    memory: TokenMemory[tuple] = TokenMemory()

    def authenticate_credentials(self, key: str) -> tuple:
        hit = self.memory.get(key)
        if hit is not None:
            return hit
        found = super().authenticate_credentials(key)
        self.memory.keep(key, found)
        return found

    @classmethod
    def forget(cls) -> None:
        cls.memory.forget()
