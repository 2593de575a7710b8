"""The benchmark's stand-in for autovacuum applies autovacuum's thresholds."""

from __future__ import annotations

import pytest
from django.db import connection

from bench.autovacuum import autovacuum_pass

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL statistics")


def _flush_stats() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")


def _changed_since_analyze(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_table_changed_past_the_threshold_is_analyzed_and_a_quiet_one_is_not():
    if connection.pg_version < 150000:
        pytest.skip("needs PostgreSQL 15 (pg_stat_force_next_flush)")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_av_busy (id integer)")
        cursor.execute("CREATE TABLE bench_av_quiet (id integer)")
        try:
            cursor.execute("INSERT INTO bench_av_busy SELECT generate_series(1, 500)")
            cursor.execute("INSERT INTO bench_av_quiet SELECT generate_series(1, 10)")
            _flush_stats()
            assert _changed_since_analyze("bench_av_busy") == 500

            done = autovacuum_pass()

            assert "analyze bench_av_busy" in done
            assert not any(action.endswith("bench_av_quiet") for action in done)
            _flush_stats()
            assert _changed_since_analyze("bench_av_busy") == 0
        finally:
            cursor.execute("DROP TABLE bench_av_busy")
            cursor.execute("DROP TABLE bench_av_quiet")
