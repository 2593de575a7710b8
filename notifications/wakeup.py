"""Mailer wake-ups: the notifications group, having committed notifications, tells the mailers,
so an e-mail leaves within milliseconds instead of at a mailer's next poll. A hint, never the
only trigger: a lost wake-up costs at most EMAIL_POLL_INTERVAL_S."""

from __future__ import annotations

from typing import Any

from eventbus.redis.breaker import Breaker
from eventbus.redis.transport import Transport, get_transport

__all__ = ["CHANNEL", "subscribe", "wake_mailers"]

CHANNEL = "notifications:mail-wakeup"

_breaker = Breaker("could not wake the mailers (they will poll instead)")


def subscribe(transport: Transport) -> Any:
    """A mailer's subscription: `wait(timeout)` returns when notifications were committed, or after timeout."""
    return transport.subscribe(CHANNEL)


def wake_mailers(_committed: list[Any]) -> None:
    """One PUBLISH after the commit (bulk.on_commit_once); never raises: with Redis away, the
    breaker skips it for a second at a time and the mailers poll."""
    _breaker.call(lambda: get_transport().broadcast(CHANNEL))
