"""The long-running worker: the loop the relay and every consumer run, as Zulip's
QueueProcessingWorker is for its queues.

A worker says what one step is (`step`); this base owns the rest: stop requests that are safe
from a signal handler and cut a blocking wait short, one log line when Redis or the database
stops answering and one when it is back, backoff in between (eventbus.runtime.outage), and an orderly
exit. A step is the unit a stop waits for: the work in hand finishes, then the loop ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import ClassVar, TypeVar

from django.db import InterfaceError, OperationalError, connection

from eventbus.redis import timeseries
from eventbus.redis.transport import GroupMissing, Transport, TransportUnavailable, get_transport
from eventbus.runtime import heartbeats
from eventbus.runtime.heartbeats import Heartbeat
from eventbus.runtime.outage import Outage

__all__ = ["DatabaseUnavailable", "ShutdownRequested", "Worker", "database_broken"]

T = TypeVar("T")


class ShutdownRequested(BaseException):
    """Raised inside a blocking wait when a stop is requested, to return at once.

    A BaseException so that no `except Exception` on the way swallows it."""


class DatabaseUnavailable(Exception):
    """The database connection broke; the work in hand is held and retried, nothing is
    acknowledged."""


def database_broken(exc: BaseException) -> bool:
    """Did this error break the database connection (rather than fail one statement)? Then the
    work in hand is held for after the outage instead of being counted as a failure."""
    if connection.needs_rollback or isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        raw = connection.connection
        return raw is None or bool(getattr(raw, "closed", False)) or bool(getattr(raw, "broken", False))
    return False


class Worker:
    """Base of the relay and the consumer. Subclasses set `outage_consequence`, implement `who`,
    `step` and `heartbeat`, and call `loop` from their `run`.

    While it loops, a worker beats (eventbus.runtime.heartbeats) every BEAT_INTERVAL_S with what its
    `heartbeat()` says, and writes the figures it counted meanwhile (eventbus.redis.timeseries); when
    the loop ends its beat is removed at once."""

    # What goes on while Redis or the database is away, for the outage's log line.
    outage_consequence: ClassVar[str]
    # Errors that mean "the database is unreachable": back off and try the step again.
    database_errors: ClassVar[tuple[type[BaseException], ...]] = (DatabaseUnavailable, OperationalError, InterfaceError)

    def __init__(self, *, transport: Transport | None = None) -> None:
        self._transport = transport
        self.log = logging.getLogger(type(self).__module__)  # eventbus.runtime.consumer, eventbus.runtime.relay
        self._stopping = threading.Event()
        self._interruptible = False
        self._outage = Outage(self.log, consequence=self.outage_consequence, stopping=self._stopping)
        self._next_beat = 0.0

    @property
    def transport(self) -> Transport:
        """The transport given, or the process's (eventbus.redis.transport), taken on first use."""
        if self._transport is None:
            self._transport = get_transport()
        return self._transport

    @property
    def who(self) -> str:
        """How the log names this worker ("consumer c1", "the relay")."""
        raise NotImplementedError

    # --- stopping -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the loop to stop after the work in hand. Safe to call from a signal handler: if
        the loop is blocked in a wait (for messages, for a wake-up) it returns at once."""
        self._stopping.set()
        if self._interruptible:
            self._interruptible = False
            raise ShutdownRequested

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def interruptibly(self, wait: Callable[[], T], *, otherwise: T) -> T:
        """Run a call that may block for long so that request_stop() cuts it short (nothing is
        in hand while it waits). Returns `otherwise` at once if a stop was already requested."""
        self._interruptible = True
        try:
            if self.stopping:
                return otherwise
            return wait()
        finally:
            self._interruptible = False

    # --- the loop -------------------------------------------------------------------------

    def step(self, *, once: bool) -> bool:
        """Do one unit of work; True if there was nothing (left) to do."""
        raise NotImplementedError

    def heartbeat(self) -> Heartbeat:
        """What this worker says about itself in its beat."""
        raise NotImplementedError

    def beat(self, *, force: bool = False) -> None:
        """Send the heartbeat and the figures counted since the last one, if BEAT_INTERVAL_S has
        passed. Never raises for Redis: the step finds out on its own that it is gone."""
        now = time.monotonic()
        if not force and now < self._next_beat:
            return
        self._next_beat = now + heartbeats.BEAT_INTERVAL_S
        try:
            heartbeats.send(self.transport, self.heartbeat())
            timeseries.recorder.flush(self.transport)
        except TransportUnavailable:
            pass

    def _forget_beat(self, name: str) -> None:
        try:
            timeseries.recorder.flush(self.transport)
            heartbeats.forget(self.transport, name)
        except TransportUnavailable:
            pass  # it expires on its own

    def loop(self, *, once: bool = False) -> None:
        """Step until stopped (or, with once=True, until a step finds nothing to do). A Redis or
        database outage is logged once, waited out with backoff, and its end logged; a vanished
        consumer group is the worker's to handle (`group_missing`)."""
        while not self.stopping:
            try:
                self.beat()
                done = self.step(once=once)
                self._outage.recovered(self.who)
                if once and done:
                    break
                self.between_steps()
            except ShutdownRequested:
                break
            except TransportUnavailable as exc:
                self.redis_lost()
                self._outage.failed("Redis", exc, redis_url=self.transport.url)
            except GroupMissing as exc:
                self.group_missing(exc)
            except self.database_errors as exc:
                self._outage.failed("database", exc)
                connection.close()  # reconnect on next use
        self._interruptible = False
        self._forget_beat(self.heartbeat().name)

    def between_steps(self) -> None:
        """Wait for more work, if the step does not do so itself. Nothing by default."""

    def redis_lost(self) -> None:
        """Drop whatever a Redis failure left unusable (a subscription). Nothing by default."""

    def group_missing(self, exc: GroupMissing) -> None:
        """A stream or consumer group vanished: by default, an outage like any other."""
        self.redis_lost()
        self._outage.failed("Redis", exc, redis_url=self.transport.url)
