"""Running test code in several threads at the same moment, to prove what holds under races."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
from django.db import connection, connections

__all__ = ["another_connection", "run_at_once"]


def another_connection(**options: object) -> psycopg.Connection:
    """A PostgreSQL connection of the test's own to the test database, beside Django's and the
    processes': to hold locks they run into, or to watch them."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None,
        dbname=db["NAME"], **options,
    )  # fmt: skip


def run_at_once(workers: list[Callable[[], object]]) -> list[object]:
    """Start every worker in its own thread at the same moment; re-raise the first error."""
    start = threading.Barrier(len(workers))
    results: list[object] = []
    errors: list[BaseException] = []

    def run(work: Callable[[], object]) -> None:
        try:
            start.wait(10)
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            errors.append(exc)
        finally:
            connections.close_all()

    # Daemon threads: a worker that hangs fails this test instead of hanging the session.
    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0))
    assert not any(t.is_alive() for t in threads), "a worker hung"
    if errors:
        raise errors[0]
    return results
