"""The transaction around bulk statements: pipeline mode, relaxed commits, one callback per
transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import connection, transaction

__all__ = ["on_commit_once", "pipelined", "relaxed_commit"]


def relaxed_commit() -> None:
    """Let the current transaction commit without waiting for its WAL flush (PostgreSQL's
    synchronous_commit = off, for this transaction only). Only for bookkeeping whose loss in a
    database crash is harmless (it is redone, and the redo is deduplicated); never for effects
    or anything acknowledged to a client or to Redis."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


@contextlib.contextmanager
def pipelined() -> Iterator[None]:
    """On PostgreSQL, send the statements issued inside in as few round trips as possible
    (psycopg's pipeline mode: a statement whose result is read syncs; the rest are sent
    together); errors surface on leaving the block, as Django database errors. Elsewhere, a
    no-op.

    Only for code that does not read row counts: in pipeline mode a statement's rowcount is
    unknown until the sync, which ORM saves with update_fields and QuerySet.update() rely on.
    Open it inside transaction.atomic(), not around it: psycopg syncs (a round trip) whenever
    autocommit changes in pipeline mode, and atomic() changes it on the way in and out.
    """
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    if connection.connection.pgconn.pipeline_status:  # already in one: join it (leaving a nested
        yield  # block would sync, a round trip for nothing)
        return
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


class _Collected:
    """The callback on_commit_once registers: `deliver` with everything collected."""

    def __init__(self, key: object, deliver: Callable[[list[Any]], object]) -> None:
        self.key = key
        self.deliver = deliver
        self.items: list[Any] = []

    def __call__(self) -> None:
        self.deliver(self.items)


def on_commit_once(key: object, items: Iterable[Any], deliver: Callable[[list[Any]], object]) -> None:
    """After the current transaction commits, call `deliver` once with every item collected under
    `key` during it, however many times this is called (e.g. once per handler of a consumer's
    batch: one e-mail connection, one wake-up, not one each). Like transaction.on_commit, nothing
    is delivered if the transaction rolls back; items added in a savepoint that rolls back may
    still be delivered with the others, so `deliver` must check them against the database.
    Never raises from `deliver` into the committing code (robust)."""
    items = list(items)
    for _, func, _ in connection.run_on_commit:
        if isinstance(func, _Collected) and func.key == key:
            func.items.extend(items)
            return
    collected = _Collected(key, deliver)
    collected.items.extend(items)
    transaction.on_commit(collected, robust=True)
