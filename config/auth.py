"""Token authentication with a short per-process cache, so the hot API path does not query the
token table on every request."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from rest_framework.authentication import TokenAuthentication


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication, remembering token -> user for AUTH_TOKEN_CACHE_S seconds
    (0 turns the cache off). A deleted token or deactivated user stops working within that
    time in every web process. Failed look-ups are never cached."""

    _cache: dict[str, tuple[float, Any, Any]] = {}
    _lock = threading.Lock()
    max_entries = 10_000

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        ttl = settings.AUTH_TOKEN_CACHE_S
        if ttl <= 0:
            return super().authenticate_credentials(key)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        user, token = super().authenticate_credentials(key)
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = (now + ttl, user, token)
        return user, token

    @classmethod
    def forget(cls) -> None:
        with cls._lock:
            cls._cache.clear()
