"""SECRET_KEY fails closed: a missing, weak or published key refuses to start with one line;
only DEBUG or the embedded mode may run without one, and then on a random key kept in
var/secret_key, never on a fixed one."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from config.secret_key import local_secret_key

WEAK_KEYS = {
    "short": ("k" * 10 + "ey-0123456789", "is 23 characters long, fewer than 50"),
    "few-different-characters": ("abab" * 20, "has fewer than 5 different characters"),
    "published-development-key": (
        "insecure-local-development-key-do-not-use-in-production",
        "is the development key published in this repository",
    ),
    "django-insecure-prefix": ("django-insecure-" + "x1y2z3" * 10, "starts with 'django-insecure-'"),
}


def assert_refused_in_one_line(result, reason: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"configuration error: SECRET_KEY {reason}")


def test_production_without_a_secret_key_refuses_to_start_in_one_line(start, production_env):
    del production_env["SECRET_KEY"]

    result = start("manage.py", "check", **production_env)

    assert_refused_in_one_line(result, "is not set: set it to 50 or more random characters")


@pytest.mark.parametrize(("key", "reason"), WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_production_with_a_weak_secret_key_refuses_to_start_in_one_line(start, production_env, key, reason):
    result = start("manage.py", "check", **{**production_env, "SECRET_KEY": key})

    assert_refused_in_one_line(result, reason)


def test_a_weak_secret_key_is_refused_in_development_too(start, tmp_path: Path):
    key, reason = WEAK_KEYS["published-development-key"]

    result = start("manage.py", "check", DEBUG="true", SECRET_KEY=key)

    assert_refused_in_one_line(result, reason)
    assert not (tmp_path / "var" / "secret_key").exists()


def test_the_embedded_mode_without_a_key_generates_one_private_to_its_owner_and_keeps_it(probe, tmp_path: Path):
    first = probe({}).settings["SECRET_KEY"]
    second = probe({}).settings["SECRET_KEY"]

    kept = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_text().strip() == first == second
    assert len(first) >= 50


def test_debug_on_a_real_database_without_a_key_uses_the_generated_key_not_a_published_one(
    probe, production_env, tmp_path: Path
):
    del production_env["SECRET_KEY"]

    key = probe({**production_env, "DEBUG": "true"}).settings["SECRET_KEY"]

    assert key == (tmp_path / "var" / "secret_key").read_text().strip()
    assert key not in {k for k, _ in WEAK_KEYS.values()}


def test_processes_starting_together_agree_on_one_generated_key(tmp_path: Path):
    path = tmp_path / "var" / "secret_key"
    keys: list[str] = []
    barrier = threading.Barrier(8)

    def start_one() -> None:
        barrier.wait()
        keys.append(local_secret_key(path))

    threads = [threading.Thread(target=start_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8
    assert set(keys) == {path.read_text().strip()}
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"], "no draft left behind"


def test_a_damaged_key_file_refuses_to_start_and_says_how_to_recover(start, tmp_path: Path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret_key").write_text("\n")

    result = start("manage.py", "check")

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"configuration error: the key in {tmp_path / 'var' / 'secret_key'} is 0 characters long, fewer than 50: "
        "delete the file and a new one is generated"
    ]
