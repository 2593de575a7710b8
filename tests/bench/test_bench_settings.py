"""Production does not carry the benchmark: its settings leave the `bench` app out, and asking
them for `manage.py bench` says in one line how to run it (config/settings_bench.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.processes import ROOT


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def bench_settings(database: Path) -> dict[str, str]:
    """The benchmark's settings on a SQLite file of the test's own."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings_bench", "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": settings.REDIS_URL, "SECRET_KEY": "bench-test-key-" + "0123456789abcdef" * 4, "DEBUG": "false",
    }  # fmt: skip


def test_production_settings_leave_the_benchmark_out():
    assert "bench" not in settings.INSTALLED_APPS
    assert "bench.peers" not in settings.INSTALLED_APPS  # the Celery peer of the peers scenario


def test_bench_under_production_settings_says_in_one_line_how_to_run_it():
    result = manage("bench", "--quick", DJANGO_SETTINGS_MODULE="config.settings")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "make bench" in result.stderr
    assert "DJANGO_SETTINGS_MODULE=config.settings_bench" in result.stderr


def test_bench_on_a_database_never_migrated_says_so_in_one_line(tmp_path: Path):
    empty = tmp_path / "never-migrated.sqlite3"
    result = manage("bench", "--quick", "--out", str(tmp_path / "out"), **bench_settings(empty))

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"the database at sqlite:///{empty} has no tables: run `python manage.py migrate` first" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bench_on_a_database_migrated_only_in_part_says_so_in_one_line(tmp_path: Path):
    database = bench_settings(tmp_path / "part.sqlite3")
    assert manage("migrate", "contenttypes", **database).returncode == 0

    result = manage("bench", "--quick", "--out", str(tmp_path / "out"), **database)

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "migration(s): run `python manage.py migrate` first" in result.stderr
    assert "has no tables" not in result.stderr
