"""Production does not carry the benchmark: its settings leave the `bench` app out, and asking
them for `manage.py bench` says in one line how to run it (config/settings_bench.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

from tests.processes import ROOT


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_production_settings_leave_the_benchmark_out():
    assert "bench" not in settings.INSTALLED_APPS


def test_bench_under_production_settings_says_in_one_line_how_to_run_it():
    result = manage("bench", "--quick", DJANGO_SETTINGS_MODULE="config.settings")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "make bench" in result.stderr
    assert "DJANGO_SETTINGS_MODULE=config.settings_bench" in result.stderr

