"""A deployment shares one Redis: with a real database and no REDIS_URL, nothing starts unless
an embedded Redis on this host is asked for. The embedded mode needs nothing set."""

from __future__ import annotations

from eventbus.redis.transport import unreachable_message


def test_a_database_without_redis_url_refuses_to_start_in_one_line(start, production_env):
    del production_env["REDIS_URL"]

    result = start("manage.py", "check", **production_env)

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "configuration error: REDIS_URL is not set: every process of a deployment must share one Redis; "
        "set REDIS_URL to your Redis server, or EMBEDDED_REDIS=true to run an embedded Redis on this host "
        "(development only)"
    ]


def test_embedded_redis_true_lets_a_database_run_without_redis_url(start, production_env):
    del production_env["REDIS_URL"]

    result = start("manage.py", "check", **production_env, EMBEDDED_REDIS="true")

    assert result.returncode == 0, result.stderr


def test_the_embedded_mode_starts_with_nothing_set(start):
    result = start("manage.py", "check")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_a_deployment_that_cannot_reach_its_redis_is_told_to_fix_it_not_to_unset_it(settings):
    settings.EMBEDDED_REDIS = False

    message = unreachable_message(settings.REDIS_URL, ConnectionRefusedError("Connection refused"))

    assert message.endswith("(Connection refused): start Redis there, or fix REDIS_URL")
