"""Set-based statements for the hot paths (placing an order, a consumer's batch, the relay),
said in the ORM's words: a model, its field names, dicts of values, lookups like the ORM's
(`{"id__in": ids, "status__in": allowed}`). This package turns them into SQL; no caller writes
SQL text.

Why not the ORM itself: its per-object work (model instances, signals, one statement per save)
and the cost of compiling a QuerySet (about 150 us, more than the rest of placing an order's
Python) are what these paths cannot afford. Each statement here is worked out once per shape
(model, fields, lookups) and its SQL text is the same for any number of keys (`= ANY(array)`
on PostgreSQL), so psycopg prepares it once. Statements sent inside `pipelined()` go to
PostgreSQL together and come back in one round trip.

Values go in as Python values: UUIDs, aware datetimes, Decimals, str, int, bool.
"""

from __future__ import annotations

from bulk.pipeline import on_commit_once, pipelined, relaxed_commit
from bulk.statements import Select, delete, insert, select, update, update_each

__all__ = [
    "Select",
    "delete",
    "insert",
    "on_commit_once",
    "pipelined",
    "relaxed_commit",
    "select",
    "update",
    "update_each",
]
