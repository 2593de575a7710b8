"""`make bench QUICK=1` run once per test session (every scenario, the spike included), against
the test database; tests/bench/ reads its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.processes import ROOT, database_url


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None, django_db_blocker: object) -> dict:
    """The quick benchmark's report (latest.json), with its printed table (`_stdout`), whether
    it drew its plot (`_png`) and any spike configuration left on disk (`_leftovers`)."""
    out = tmp_path_factory.mktemp("bench")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DEBUG",)},
        "DJANGO_SETTINGS_MODULE": "config.settings_bench",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "bench-test-key-" + "0123456789abcdef" * 4,
        "DEBUG": "false",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((out / "latest.json").read_text())
    document["_stdout"] = result.stdout
    document["_png"] = (out / "latest.png").exists()
    document["_leftovers"] = [p.name for p in out.rglob("spike-config.json")]
    return document
