"""Outbox wake-ups: a process that committed outbox rows tells the relay, so their events leave
within a millisecond instead of at the relay's next poll. A hint in both directions, never the
only trigger: a lost wake-up costs at most one RELAY_POLL_INTERVAL."""

from __future__ import annotations

import os
import threading

from eventbus.redis.breaker import Breaker
from eventbus.redis.client import Subscription
from eventbus.redis.transport import Transport, get_transport

__all__ = ["CHANNEL", "subscribe", "wake_relay"]

CHANNEL = "eventbus:outbox-wakeup"


def subscribe(transport: Transport) -> Subscription:
    """The relay's subscription: `wait(timeout)` returns when rows were committed, or after timeout."""
    return transport.subscribe(CHANNEL)


_breaker = Breaker("could not wake the outbox relay (it will poll instead)")


class _Sender:
    """Publishes wake-ups from a background thread, so a committing request never waits on
    Redis, and a burst of commits costs one PUBLISH, not one each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._owner_pid = 0  # the thread does not survive a fork (gunicorn workers)

    def request(self) -> None:
        if self._owner_pid != os.getpid():
            with self._lock:
                if self._owner_pid != os.getpid():
                    self._due = threading.Event()
                    threading.Thread(target=self._run, args=(self._due,), name="outbox-wakeup", daemon=True).start()
                    self._owner_pid = os.getpid()
        self._due.set()

    def _run(self, due: threading.Event) -> None:
        while True:
            due.wait()
            due.clear()
            _breaker.call(lambda: get_transport().broadcast(CHANNEL))


_sender = _Sender()


def wake_relay() -> None:
    """Ask for an outbox wake-up to be published; never raises, never blocks (called after
    commit). Best effort: the relay also polls."""
    _sender.request()
