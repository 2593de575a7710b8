"""Autovacuum's work, for servers that have it off (this project's CI machine among them).

A production PostgreSQL runs autovacuum: it ANALYZEs a table once 50 + 10% of its rows changed
and VACUUMs it once 50 + 20% are dead. Without it, a benchmark on a new database measures a
server no one runs: plans made for empty tables stay cached in every connection while the tables
grow (the foreign-key check of each order line scanned the whole orders table: 95 million rows
read for 10,000 orders), and dead rows pile up. While the benchmark runs, this thread applies
autovacuum's default thresholds every few seconds; its work is PostgreSQL CPU, counted as such.
"""

from __future__ import annotations

import logging
import threading

from django.db import connection, connections

log = logging.getLogger(__name__)

ANALYZE_THRESHOLD, ANALYZE_SCALE = 50, 0.1  # PostgreSQL's defaults
VACUUM_THRESHOLD, VACUUM_SCALE = 50, 0.2


def server_autovacuum_is_on() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return cursor.fetchone()[0] == "on"


def autovacuum_pass() -> list[str]:
    """One pass over the tables of the current database; returns what it did."""
    done = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze FROM pg_stat_user_tables ORDER BY relname"
        )
        for table, live, dead, changed in cursor.fetchall():
            quoted = connection.ops.quote_name(table)
            if dead > VACUUM_THRESHOLD + VACUUM_SCALE * live:
                cursor.execute(f"VACUUM ANALYZE {quoted}")
                done.append(f"vacuum analyze {table}")
            elif changed > ANALYZE_THRESHOLD + ANALYZE_SCALE * live:
                cursor.execute(f"ANALYZE {quoted}")
                done.append(f"analyze {table}")
    return done


class AutovacuumStandIn:
    """Run autovacuum_pass() every `every_s` seconds in a thread, if the server's own
    autovacuum is off; a no-op elsewhere (SQLite, or autovacuum on)."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self.passes = 0
        self.actions = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        if connection.vendor != "postgresql" or server_autovacuum_is_on():
            return False
        self._thread = threading.Thread(target=self._run, name="autovacuum-stand-in", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every_s):
                try:
                    self.actions += len(autovacuum_pass())
                    self.passes += 1
                except Exception:
                    log.exception("autovacuum stand-in: pass failed")
                    connections["default"].close()
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
