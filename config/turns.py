"""Turns: at most N at once, the others served in arrival order, none waiting longer than a bound.

The web's ASGI front (orders.intake) hands Django at most WEB_DJANGO_AT_ONCE requests at a time
per worker (config/settings.py says why). A request past that waits here, in the event loop,
holding no thread and no database connection. One still waiting after WEB_DJANGO_WAIT_S is told
so (TimeoutError) and answered 503 `busy`.

The bound is kept by one sweep per worker, a few times a second while anyone waits, not by a
timer per waiting request: under a surge the event loop is what limits the web, and a timer per
request (`asyncio.wait_for`) once cost the intake a quarter of the orders it took
(docs/benchmarks.md, "Database connections under a crowd").
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["Turns"]


class Turns:
    def __init__(self, at_once: int, wait_s: float) -> None:
        self.free = at_once
        self.wait_s = wait_s
        self._waiting: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def take(self) -> None:
        """Wait for a turn; TimeoutError if none came within `wait_s`. Whoever gets a turn gives
        it back with `give_back`, whatever happens."""
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self._waiting.append((time.monotonic() + self.wait_s, turn))
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_every_s(), self._sweep)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.give_back()  # handed a turn just as it was cancelled: pass it on
            raise

    def give_back(self) -> None:
        """End a turn: the longest waiting gets it, or it is free."""
        while self._waiting:
            _, turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1

    def _sweep_every_s(self) -> float:
        return min(max(self.wait_s / 4, 0.005), 0.25)

    def _sweep(self) -> None:
        """Tell those waiting past their bound (the oldest, at the front) that no turn came."""
        self._sweeper = None
        now = time.monotonic()
        while self._waiting and (self._waiting[0][0] <= now or self._waiting[0][1].done()):
            _, turn = self._waiting.popleft()
            if not turn.done():
                turn.set_exception(TimeoutError())
        if self._waiting:
            self._sweeper = asyncio.get_running_loop().call_later(self._sweep_every_s(), self._sweep)
