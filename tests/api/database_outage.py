"""A database outage inside the test's process: statements sent to the database connection fail
with the OperationalError Django raises for a lost server. Shared by the tests of the API's 503
answers and of /healthz."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, OperationalError, connection

SERVER_GONE = 'connection to server at "127.0.0.1", port 5432 failed: Connection refused'


@contextmanager
def database_down(
    statements: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE"), error: DatabaseError | None = None
) -> Iterator[list[str]]:
    """Fail every statement starting with one of `statements`; yields the refused statements."""
    refused: list[str] = []

    def fail(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith(statements):
            refused.append(sql)
            raise error or OperationalError(SERVER_GONE)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield refused
