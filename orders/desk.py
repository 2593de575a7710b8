"""The order desk of a web worker: group commit for placing orders.

Orders the intake (orders.intake) validated arrive here from many connections at once. A clerk
gathers what arrives within INTAKE_GATHER_MS (and whatever arrived while the other clerk's
transaction committed), up to INTAKE_BATCH_MAX orders, counts their rate limits in one Redis
round trip, and places them all in ONE database transaction (orders.placing.place_committed) in a
thread of its own. Each request is answered once that transaction has committed: 201 with the
order, or the refusal its rules give. INTAKE_DESK_CONNECTIONS clerks run at once, each with one
database connection, so a worker never holds more than that for orders however many arrive.

What it promises:
- answered means committed: the 201 leaves after PostgreSQL (or SQLite) said COMMIT; a database
  error answers every order of the batch 503 with Retry-After, and none of them was placed (a
  retry with the same Idempotency-Key is safe in both cases, also when the COMMIT's answer was
  lost);
- nobody gets an order after they stopped waiting: a request whose client left, or that waited
  past INTAKE_DEADLINE_S, is dropped before its transaction begins;
- nobody waits past the deadline for a refusal: an order still queued at its deadline is
  answered 503 with Retry-After then, not when a clerk reaches it (under a surge the queue
  behind a transaction can be thousands long);
- an order does not queue for a database connection behind the requests Django serves: each
  clerk keeps its own connection, and so does the thread of the intake's look-ups (query),
  all taken at the worker's start, ahead of any crowd;
- Redis is not needed to place an order: OrderPlaced goes to the outbox in the same transaction
  and is published after commit, by this thread or else by the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from config import throttling
from config.api import domain_error_answer
from config.errorpages import DATABASE_UNAVAILABLE
from config.errors import DomainError
from config.metrics import INTAKE_ANSWERS
from orders.api.serializers import placed_answer
from orders.placing import PlaceRequest, place_committed

__all__ = ["Answer", "Desk", "Ticket", "busy", "expired"]

log = logging.getLogger(__name__)

# (HTTP status, JSON body as bytes, headers)
Answer = tuple[int, bytes, dict[str, str]]


@dataclass(eq=False)
class Ticket:
    """One order waiting at the desk."""

    request: PlaceRequest
    deadline: float  # time.monotonic()
    wanted: Callable[[], bool]  # False once the client has gone
    answer: asyncio.Future[Answer | None] = field(default=None)  # type: ignore[assignment]
    taken: bool = False  # in a clerk's hands: its transaction decides the answer
    expired: bool = False  # refused at its deadline while queued


def _encoded(status: int, body: Any, headers: dict[str, str]) -> Answer:
    return status, json.dumps(body, separators=(",", ":")).encode(), headers


def busy(detail: str) -> Answer:
    return _encoded(503, {"detail": detail, "code": "busy"}, {"Retry-After": "2"})


EXPIRED = "Your order waited too long to be placed and was not placed; please retry."


class Desk:
    def __init__(self) -> None:
        self.gather_s = settings.INTAKE_GATHER_MS / 1000
        self.batch_max = max(1, settings.INTAKE_BATCH_MAX)
        self.clerks = max(1, settings.INTAKE_DESK_CONNECTIONS)
        self._queue: list[Ticket] = []
        self._arrived: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._in_hand = 0
        self._expired_in_queue = 0  # answered at their deadline, not yet passed over by a clerk
        self._executor = ThreadPoolExecutor(self.clerks, thread_name_prefix="order-desk")
        # One look-up at a time (orders.intake_lookups batches them), beside the transactions.
        self._lookups = ThreadPoolExecutor(1, thread_name_prefix="order-desk-lookups")

    @property
    def waiting(self) -> int:
        """Orders at the desk: queued, or in a transaction."""
        return len(self._queue) - self._expired_in_queue + self._in_hand

    def connect(self) -> None:
        """Each clerk and the look-ups take their connection now, in the background: a crowd
        arriving with the worker's first requests would otherwise be ahead of them in the
        pool's queue."""
        arrived = threading.Barrier(self.clerks)  # one call per thread: each waits for the others
        for _ in range(self.clerks):
            self._executor.submit(_connect, arrived)
        self._lookups.submit(_connect, None)

    async def query(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in the desk's look-up thread, on its own connection (the intake's look-ups)."""
        return await asyncio.get_running_loop().run_in_executor(self._lookups, _on_own_connection, fn, *args)

    async def place(self, ticket: Ticket) -> Answer | None:
        """The answer to this order once its transaction committed (or why it was not placed);
        None if its client left before it was handed to the database."""
        if self._arrived is None:
            self._arrived = asyncio.Event()
            self._tasks = [asyncio.create_task(self._clerk()) for _ in range(self.clerks)]
        loop = asyncio.get_running_loop()
        ticket.answer = loop.create_future()
        self._queue.append(ticket)
        self._arrived.set()
        timer = loop.call_later(max(ticket.deadline - time.monotonic(), 0.0), self._expire, ticket)
        try:
            return await ticket.answer
        finally:
            timer.cancel()

    def _expire(self, ticket: Ticket) -> None:
        """The ticket's deadline: refused now if no clerk has taken it (a clerk passes it over)."""
        if ticket.taken or ticket.answer.done():
            return
        _refuse_expired(ticket)
        ticket.expired = True
        self._expired_in_queue += 1

    async def close(self) -> None:
        """Finish the transactions in hand (their clients get their answers), then stop; a
        look-up held up (a locked table) does not hold up the worker's exit."""
        while self._in_hand:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        # Each thread closes its own connection (Django's are per thread): the server is not left
        # holding sessions of a worker that stopped until its process exits.
        finished = threading.Barrier(self.clerks)  # one call per thread, as in connect()
        for _ in range(self.clerks):
            self._executor.submit(_disconnect, finished)
        self._executor.shutdown(wait=True)
        closed = self._lookups.submit(_disconnect, None)
        with contextlib.suppress(TimeoutError):  # a look-up changes nothing: not waited for long
            await asyncio.wait_for(asyncio.wrap_future(closed), timeout=1.0)
        self._lookups.shutdown(wait=False, cancel_futures=True)

    async def _clerk(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            if len(self._queue) < self.batch_max and self.gather_s:
                await asyncio.sleep(self.gather_s)
            batch, self._queue = self._queue[: self.batch_max], self._queue[self.batch_max :]
            if not self._queue:
                self._arrived.clear()
            batch = self._still_wanted(batch)
            if not batch:
                continue
            self._in_hand += len(batch)
            try:
                answers = await loop.run_in_executor(self._executor, _commit, [t.request for t in batch])
            except Exception:  # never leave a client waiting on a bug
                log.exception("order desk: a batch of %d orders failed; answered 503", len(batch))
                answers = [busy("Your order could not be placed; please retry.")] * len(batch)
            finally:
                self._in_hand -= len(batch)
            for ticket, answer in zip(batch, answers, strict=True):
                if not ticket.answer.done():
                    ticket.answer.set_result(answer)

    def _still_wanted(self, batch: list[Ticket]) -> list[Ticket]:
        now = time.monotonic()
        kept = []
        for ticket in batch:
            if ticket.answer.done():  # refused at its deadline (_expire), or its request was cancelled
                self._expired_in_queue -= ticket.expired
            elif not ticket.wanted():
                INTAKE_ANSWERS.labels(outcome="abandoned").inc()
                ticket.answer.set_result(None)
            elif now > ticket.deadline:  # its timer has not run yet
                _refuse_expired(ticket)
            else:
                ticket.taken = True
                kept.append(ticket)
        return kept


def expired() -> Answer:
    """The answer to an order not placed by its deadline (INTAKE_DEADLINE_S), counted."""
    INTAKE_ANSWERS.labels(outcome="expired").inc()
    return busy(EXPIRED)


def _refuse_expired(ticket: Ticket) -> None:
    ticket.answer.set_result(expired())


def _one_per_thread(barrier: threading.Barrier | None) -> None:
    """Hold this thread until each of the desk's threads has taken one such call."""
    try:
        if barrier is not None:
            barrier.wait(timeout=10)
    except threading.BrokenBarrierError:
        pass  # this thread goes on all the same


def _connect(arrived: threading.Barrier | None) -> None:
    _one_per_thread(arrived)
    try:
        connection.ensure_connection()
    except DatabaseError as exc:  # the first order connects again
        log.warning("order desk: could not connect to the database yet (%s)", exc)


def _disconnect(finished: threading.Barrier | None) -> None:
    _one_per_thread(finished)
    connection.close()


def _on_own_connection(fn: Callable[..., Any], *args: Any) -> Any:
    try:  # on the thread's own connection, kept from one call to the next
        return fn(*args)
    except DatabaseError:
        connection.close()  # perhaps broken: the next call connects afresh
        raise


def _commit(requests: Sequence[PlaceRequest]) -> list[Answer]:
    """In a desk thread: the rate limits, then one transaction for the orders within them."""
    answers: list[Answer | None] = [None] * len(requests)
    waits = throttling.order_waits([r.customer_id for r in requests])
    for i, wait in enumerate(waits):
        if wait is not None:
            INTAKE_ANSWERS.labels(outcome="throttled").inc()
            answers[i] = _encoded(
                429, {"detail": f"Request was throttled. Expected available in {wait} seconds.", "code": "throttled"},
                {"Retry-After": str(wait)},
            )  # fmt: skip
    go = [i for i, answer in enumerate(answers) if answer is None]
    try:
        outcomes = _on_own_connection(place_committed, [requests[i] for i in go]) if go else []
    except DatabaseError as exc:
        log.warning("order desk: the database refused a batch of %d orders (%s); answered 503", len(go), exc)
        INTAKE_ANSWERS.labels(outcome="failed").inc(len(go))
        for i in go:
            answers[i] = _encoded(503, DATABASE_UNAVAILABLE, {"Retry-After": "2"})
        return answers  # type: ignore[return-value]
    for i, outcome in zip(go, outcomes, strict=True):
        if isinstance(outcome, DomainError):
            INTAKE_ANSWERS.labels(outcome="refused").inc()
            answer = domain_error_answer(outcome)
            assert answer is not None, outcome
            answers[i] = _encoded(*answer)
        else:
            INTAKE_ANSWERS.labels(outcome="replay" if outcome.replayed else "placed").inc()
            answers[i] = _encoded(*placed_answer(outcome))
    return answers  # type: ignore[return-value]
