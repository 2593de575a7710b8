"""The web's gunicorn master keeps its workers' metric files in a directory of its own when
none is given, and removes only what it made (tests/operations/test_metrics_add_up.py runs
the web itself)."""

from __future__ import annotations

import json

MASTER = (
    "import json, os, config.gunicorn as g; {before}g.on_starting(None); "
    "made = os.environ.get('PROMETHEUS_MULTIPROC_DIR'); alive = bool(made) and os.path.isdir(made); "
    "g.on_exit(None); print(json.dumps([made, alive, bool(made) and os.path.exists(made)]))"
)


def master(start, before: str = "", **env: str) -> tuple[str, bool, bool]:
    result = start("-c", MASTER.format(before=before), **env)
    assert result.returncode == 0, result.stderr
    return tuple(json.loads(result.stdout.splitlines()[-1]))


def test_without_a_directory_given_the_master_makes_one_and_removes_it(start):
    made, alive, left = master(start)

    assert alive
    assert "eventshop-web-metrics-" in made
    assert not left


def test_a_directory_given_is_used_and_left_alone(start, tmp_path):
    made, _alive, left = master(start, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))

    assert made == str(tmp_path)
    assert left


def test_a_master_started_by_usr2_makes_its_own_and_leaves_the_old_one(start, tmp_path):
    old = str(tmp_path)  # the directory the replaced master made, in the environment it passed on

    made, alive, left = master(start, PROMETHEUS_MULTIPROC_DIR=old, EVENTSHOP_WEB_OWN_METRICS_DIR=old)

    assert alive
    assert made != old
    assert not left
    assert tmp_path.exists()
