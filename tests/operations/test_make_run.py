"""`make run` (bin/run) as a newcomer starts it: embedded defaults, nothing set. A second one in
the same checkout says in one line where the first runs and touches nothing of it; a lock left
by a process that is gone, or by a pid some other program now has, does not stop a start.

Each run has its own var/ (VAR_DIR) under the test's temporary directory, so the checkout's own
var/ (a developer's `make run`) is never touched."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import ROOT, free_port, wait_until

# What the tests' own environment sets and a newcomer's shell does not.
NOT_SET = (
    "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR", "VAR_DIR", "SECRET_KEY",
    "EMAIL_URL", "PORT", "BIND", "SEED_DEMO", "TEST_SQLITE_NAME", "EVENTBUS_KEY_PREFIX", "DEBUG",
)  # fmt: skip


def run_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_SET}
    env.update(VAR_DIR=str(var_dir), PORT=str(port))
    return env


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen, Path, int]]:
    """bin/run started as `make run` starts it, answering on a free port; stopped with the
    `kill <pid>` its refusal line advises, and every process it started is gone afterwards.
    One for the module: a start migrates, collects static files and seeds (tens of seconds)."""
    tmp_path = tmp_path_factory.mktemp("make-run")
    var_dir, port = tmp_path / "var", free_port()
    var_dir.mkdir()
    # A lock whose pid runs something else than bin/run (this test's own process): stale.
    (var_dir / "run.pid").write_text(f"{os.getpid()} http://127.0.0.1:1/\n")
    log = open(tmp_path / "first.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["bin/run"], cwd=ROOT, env=run_env(var_dir, port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until(
            lambda: proc.poll() is not None or answers(f"http://127.0.0.1:{port}/healthz"),
            timeout=180,
            what="the first make run to answer",
            interval=0.5,
        )
        assert proc.poll() is None, (tmp_path / "first.log").read_text()
        yield proc, var_dir, port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, 143), (tmp_path / "first.log").read_text()
        assert not (var_dir / "run.pid").exists(), "the lock outlived the run"
        assert not answers(f"http://127.0.0.1:{port}/healthz"), "the web outlived the run"
    finally:
        # A test that failed half-way: honcho starts each process in a session of its own, so
        # only bin/run's own way out (TERM, forwarded to honcho, which stops them all, then the
        # embedded Redis) leaves nothing behind; KILL is for a run that does not take it.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_a_second_make_run_says_where_the_first_runs_in_one_line_and_leaves_it_alone(first_run):
    proc, var_dir, port = first_run
    metrics = var_dir / "prometheus"
    wait_until(lambda: any(metrics.iterdir()), timeout=30, what="the first run's processes to write metrics")
    metric_files = set(metrics.iterdir())
    other_port = free_port()

    second = subprocess.run(
        ["bin/run"], cwd=ROOT, env=run_env(var_dir, other_port), capture_output=True, text=True, timeout=60
    )

    assert second.returncode == 1
    assert second.stdout == ""
    [line] = second.stderr.splitlines()
    assert re.fullmatch(
        rf"make run is already running in this checkout: http://127\.0\.0\.1:{port}/ \(pid {proc.pid}\); "
        rf"stop it first \(Ctrl-C in its terminal, or kill {proc.pid}\)",
        line,
    ), line
    assert answers(f"http://127.0.0.1:{port}/healthz")
    assert answers(f"http://127.0.0.1:{port}/readyz"), "the first run's embedded Redis was stopped"
    assert metric_files <= set(metrics.iterdir()), "the first run's metrics were wiped"
    assert proc.poll() is None


def test_make_run_prints_its_port_and_how_to_run_manage_py_commands(first_run):
    _, var_dir, port = first_run

    printed = (var_dir.parent / "first.log").read_text()

    assert re.search(rf"^  Port +{port} on 127\.0\.0\.1\b", printed, re.MULTILINE), printed
    assert ".venv/bin/python manage.py <command>" in printed
    assert "source .venv/bin/activate" in printed
