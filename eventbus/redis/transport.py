"""The process's transport: which Redis it talks to (REDIS_URL, or the embedded server under
var/redis/) and the one Transport every part of the process shares, rebuilt when the settings
that name it change. The adapter itself is eventbus.redis.streams; its names are importable
from here too, where callers have always found them.
"""

from __future__ import annotations

import functools
import threading

from django.conf import settings

from eventbus.redis import embedded
from eventbus.redis.breaker import Breaker
from eventbus.redis.client import GroupMissing, TransportUnavailable, display_url
from eventbus.redis.streams import Fields, Message, Transport

__all__ = [
    "Fields",
    "GroupMissing",
    "Message",
    "Transport",
    "TransportUnavailable",
    "connect_signals",
    "get_transport",
    "redis_url",
    "reset_transport",
    "unreachable_message",
]


def redis_url() -> str:
    """REDIS_URL, or the URL of the embedded server under var/redis/ (started on first use)."""
    return settings.REDIS_URL or embedded.ensure_server(settings.VAR_DIR / "redis")


def unreachable_message(url: str, exc: BaseException | None = None) -> str:
    """The one line a person reads when Redis does not answer: where, why, and what to do."""
    if settings.REDIS_URL and settings.EMBEDDED_REDIS:
        hint = "start Redis there, or unset REDIS_URL to use the embedded server"
    elif settings.REDIS_URL:
        hint = "start Redis there, or fix REDIS_URL"
    else:
        hint = f"the embedded server under {settings.VAR_DIR / 'redis'} did not answer; see redis.log there"
    detail = f" ({exc})" if exc else ""
    return f"REDIS_URL is unreachable ({display_url(url)}){detail}: {hint}"


_lock = threading.Lock()


@functools.cache
def _transport(url: str, prefix: str, publish_timeout_s: float, wait_replicas: int, wait_timeout_ms: int) -> Transport:
    return Transport(
        url, prefix=prefix, publish_timeout_s=publish_timeout_s, wait_replicas=wait_replicas,
        wait_timeout_ms=wait_timeout_ms,
    )  # fmt: skip


def get_transport() -> Transport:
    """The process's transport for REDIS_URL (or the embedded server) and the configured key
    prefix: one per process, shared by every thread."""
    conf = settings.EVENTBUS
    with _lock:
        return _transport(
            redis_url(), conf["KEY_PREFIX"], conf.get("PUBLISH_TIMEOUT_S", 0.25), conf.get("WAIT_REPLICAS", 0),
            conf.get("WAIT_TIMEOUT_MS", 500),
        )  # fmt: skip


def reset_transport() -> None:
    """Forget the process's transport (settings changed): the next use connects afresh, and
    breakers opened by the old one close."""
    with _lock:
        _transport.cache_clear()
        Breaker.close_all()


def connect_signals() -> None:
    """Reset the transport whenever REDIS_URL or EVENTBUS change (tests' settings overrides)."""
    from django.core.signals import setting_changed

    def _reset(*, setting: str, **kwargs: object) -> None:
        if setting in ("REDIS_URL", "EVENTBUS"):
            reset_transport()

    setting_changed.connect(_reset, weak=False, dispatch_uid="eventbus.redis.transport.reset")
