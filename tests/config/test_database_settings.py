"""How many PostgreSQL connections a process may hold is decided by its settings: the web
(gunicorn, config/gunicorn.py) pools them, commands keep one per thread, and behind PgBouncer
nothing outlives a transaction. Each case starts a process with exactly that environment."""

from __future__ import annotations

import json

import pytest

READ = (
    "import json, sys; {first}from django.conf import settings; db = settings.DATABASES['default']; "
    "print(json.dumps({{k: db.get(k) for k in ('CONN_MAX_AGE', 'DISABLE_SERVER_SIDE_CURSORS')}} "
    "| {{'pool': db['OPTIONS'].get('pool'), 'binding': db['OPTIONS'].get('server_side_binding')}}))"
)
ENV = {
    "SECRET_KEY": "a-key-given-by-the-environment-" + "0123456789" * 3,
    "DATABASE_URL": "postgres://shop@db.example:5432/shop",
    "REDIS_URL": "redis://redis.example:6379/0",
}


@pytest.fixture
def database_settings(start):
    def read(*, as_web: bool, **env: str) -> dict:
        first = "import config.gunicorn; " if as_web else ""
        result = start("-c", READ.format(first=first), **ENV, **env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[-1])

    return read


def test_the_web_pools_its_connections_by_default(database_settings):
    db = database_settings(as_web=True)

    assert db["pool"] == {"min_size": 2, "max_size": 10, "timeout": 5.0}
    assert db["CONN_MAX_AGE"] == 0


def test_the_pool_is_sized_by_the_environment(database_settings):
    db = database_settings(as_web=True, DATABASE_POOL_MAX="6", DATABASE_POOL_MIN="1", DATABASE_POOL_TIMEOUT="2.5")

    assert db["pool"] == {"min_size": 1, "max_size": 6, "timeout": 2.5}


def test_a_pool_no_larger_than_the_order_desks_connections_is_refused(start):
    """The desk keeps INTAKE_DESK_CONNECTIONS + 1 of the pool from the start (its clerks, its
    look-ups): a pool of that size would leave Django's requests none, so the settings are
    refused with a one-line reason (the web's pool as config/gunicorn.py turns it on)."""
    pool = {**ENV, "DATABASE_POOL": "true", "INTAKE_DESK_CONNECTIONS": "2"}
    result = start("manage.py", "check", **pool, DATABASE_POOL_MAX="3")

    assert result.returncode != 0
    assert result.stderr.startswith("configuration error: DATABASE_POOL_MAX=3 leaves no connection"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    fits = start("manage.py", "check", **pool, DATABASE_POOL_MAX="4")
    assert "leaves no connection" not in fits.stderr, fits.stderr


def test_a_command_keeps_its_connection_without_a_pool(database_settings):
    db = database_settings(as_web=False)

    assert db["pool"] is None
    assert db["CONN_MAX_AGE"] == 60
    assert db["binding"] is True


def test_the_web_without_a_pool_connects_per_request(database_settings):
    db = database_settings(as_web=True, DATABASE_POOL="false")

    assert db["pool"] is None
    assert db["CONN_MAX_AGE"] == 0


def test_behind_pgbouncer_nothing_outlives_a_transaction(database_settings):
    db = database_settings(as_web=True, DATABASE_PGBOUNCER="true")

    assert db["pool"] is None
    assert db["CONN_MAX_AGE"] == 0
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert db["binding"] is False
