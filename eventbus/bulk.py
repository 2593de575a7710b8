"""Bulk statements for the hot paths (placing an order, a consumer's batch), without the ORM's
per-object work.

A bulk insert is an executemany of one prepared INSERT (on PostgreSQL psycopg sends every row
in one round trip). Measured against the alternatives: unnest() arrays cost twice the client
CPU (psycopg escapes each text element in Python); a multi-row VALUES statement costs 20-30%
less client CPU but nearly doubles the server's, which must parse and plan a new statement for
every row count. Selects and updates by key use `= ANY(array)`: one query text for any
number of keys, so it is prepared once. Values go in as Python values: UUIDs, aware
datetimes, Decimals, str, int, bool (not JSON).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model

__all__ = [
    "Select",
    "delete",
    "insert",
    "pipelined",
    "relaxed_commit",
    "select",
    "set_column",
    "update_returning",
]


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


@functools.cache
def _plan(model: type[Model], names: tuple[str, ...]) -> tuple[str, tuple[Field, ...]]:
    fields = tuple(model._meta.get_field(name) for name in names)
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES ({placeholders})", fields


def insert(model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """INSERT the rows (one value per name, in order) into the model's table, in the current
    transaction: one prepared statement run for every row, sent in one round trip (psycopg's
    executemany uses pipeline mode). No signals, no defaults: give every NOT NULL column."""
    if not rows:
        return
    sql, fields = _plan(model, tuple(names))
    if connection.vendor != "postgresql":  # psycopg adapts UUIDs, datetimes, Decimals itself
        rows = [[f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _key_filter(field: Field, keys: Sequence[Any]) -> tuple[str, list[Any]]:
    """`column = ANY(array)` on PostgreSQL (one query text for any number of keys, so it is
    prepared once), `column IN (...)` elsewhere."""
    column = connection.ops.quote_name(field.column)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::{field.db_type(connection)}[])", [list(keys)]
    return f"{column} IN ({', '.join(['%s'] * len(keys))})", [field.get_db_prep_value(k, connection) for k in keys]


class Select:
    """SELECT the named columns of the rows whose `key` is in `keys`; with lock=True, FOR UPDATE
    (rows locked until commit, in `order_by` order). `send()` it, then read `rows()` (tuples of
    Python values): several sent inside pipelined() come back in one round trip."""

    def __init__(
        self, model: type[Model], names: Sequence[str], *, key: str, keys: Sequence[Any], lock: bool = False,
        order_by: str = "",
    ) -> None:  # fmt: skip
        select, self.fields, key_field, tail = _select_plan(model, tuple(names), key, lock, order_by)
        self.keys = keys
        where, self.params = _key_filter(key_field, keys) if keys else ("", [])
        self.sql = f"{select} WHERE {where}{tail}"
        self._cursor: Any = None

    def send(self) -> Select:
        if self.keys:
            self._cursor = connection.cursor()
            self._cursor.execute(self.sql, self.params)
        return self

    def rows(self) -> list[tuple[Any, ...]]:
        if self._cursor is None:
            return []
        with self._cursor as cursor:
            rows = cursor.fetchall()
        converters = [_from_db(f) for f in self.fields]
        return [tuple(convert(v) for convert, v in zip(converters, row, strict=True)) for row in rows]


@functools.cache
def _select_plan(
    model: type[Model], names: tuple[str, ...], key: str, lock: bool, order_by: str
) -> tuple[str, list[Field], Field, str]:
    """What a Select of these columns needs besides its keys, worked out once: the SELECT ...
    FROM, the fields, the key field, and what follows the WHERE."""
    qn = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    select = f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(model._meta.db_table)}"
    tail = f" ORDER BY {qn(model._meta.get_field(order_by).column)}" if order_by else ""
    if lock and connection.features.has_select_for_update:
        tail += " FOR UPDATE"
    return select, fields, model._meta.get_field(key), tail


def select(
    model: type[Model], names: Sequence[str], *, key: str, keys: Sequence[Any], lock: bool = False, order_by: str = ""
) -> list[tuple[Any, ...]]:
    """Select(...).send().rows(): one statement, read at once."""
    return Select(model, names, key=key, keys=keys, lock=lock, order_by=order_by).send().rows()


def update_returning(
    model: type[Model],
    *,
    set_sql: str,
    set_params: Sequence[Any],
    key: str,
    keys: Sequence[Any],
    where_sql: str = "",
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """UPDATE the rows whose `key` is in `keys` (and match `where_sql`) in one statement, and
    return (key, *returning) of each row it changed. Two concurrent callers can never both
    change the same row, so this is also a claim."""
    if not keys:
        return []
    field = model._meta.get_field(key)
    others = [model._meta.get_field(name) for name in returning]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    extra = f" AND {where_sql}" if where_sql else ""
    back = ", ".join(qn(f.column) for f in [field, *others])
    where, key_params = _key_filter(field, keys)
    params = [*set_params, *key_params]
    sql = f"UPDATE {table} SET {set_sql} WHERE {where}{extra} RETURNING {back}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converters = [_from_db(f) for f in [field, *others]]
    return [tuple(convert(v) for convert, v in zip(converters, row, strict=True)) for row in rows]


def delete(model: type[Model], *, key: str, keys: Sequence[Any]) -> None:
    """DELETE the rows whose `key` is in `keys`, in one statement."""
    if not keys:
        return
    where, params = _key_filter(model._meta.get_field(key), keys)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)} WHERE {where}", params)


def set_column(model: type[Model], column_name: str, values: dict[Any, Any]) -> None:
    """Set one column to a value per primary key, in one statement."""
    if not values:
        return
    pk, field = model._meta.pk, model._meta.get_field(column_name)
    qn = connection.ops.quote_name
    table, column, key = qn(model._meta.db_table), qn(field.column), qn(pk.column)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET {column} = v.value FROM unnest(%s::{pk.db_type(connection)}[], "
                f"%s::{field.db_type(connection)}[]) AS v(key, value) WHERE {table}.{key} = v.key",
                [list(values), list(values.values())],
            )
        else:
            cases = " ".join(["WHEN %s THEN %s"] * len(values))
            params = [x for k, v in values.items() for x in (k, v)]
            marks = ", ".join(["%s"] * len(values))
            cursor.execute(
                f"UPDATE {table} SET {column} = CASE {key} {cases} END WHERE {key} IN ({marks})",
                [*params, *values],
            )


def _from_db(field: Field) -> Any:
    if connection.vendor == "postgresql":
        return _same
    if field.get_internal_type() == "BooleanField":
        return bool
    return field.to_python


def _same(value: Any) -> Any:
    return value
