"""Every process says at start, in one line, what the configured Redis keeps through a crash and
what the system relies on it for."""

from __future__ import annotations

import subprocess

import pytest
import redis

from eventbus.redis import embedded
from eventbus.redis.durability import describe
from tests.processes import Processes, RedisServer, free_port, wait_until


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ({"appendonly": "yes", "appendfsync": "always", "save": ""}, "every write: appendonly yes, appendfsync always"),
        ({"appendonly": "yes", "appendfsync": "everysec", "save": ""}, "all but the last second of writes"),
        ({"appendonly": "no", "appendfsync": "everysec", "save": "3600 1"}, "what its last snapshot held"),
        ({"appendonly": "no", "appendfsync": "everysec", "save": ""}, "nothing: appendonly no and no snapshots"),
        (None, "unknown (CONFIG GET is not allowed on this server)"),
    ],
)
def test_what_a_redis_keeps_is_said_from_its_configuration(config, said):
    assert describe(config).startswith(said)


@pytest.mark.django_db(transaction=True)
def test_the_web_and_the_relay_say_what_redis_keeps_when_they_start(processes: Processes, tmp_path):
    server = RedisServer(tmp_path / "redis", persist=False)
    server.directory.mkdir()
    server.start()
    processes.env_overrides["REDIS_URL"] = server.url
    try:
        processes.start_web()
        processes.start_relay()
        for name, role in (("web", "web"), ("relay", "relay")):
            processes.wait_for_log(name, f"{role}: Redis keeps through a crash nothing: appendonly no")
        assert "never for orders, which are committed to the database before the web answers" in processes.log("web")
    finally:
        processes.stop_all()
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_redis_that_refuses_config_get_is_said_to_keep_an_unknown_amount(processes: Processes, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [str(embedded.server_binary()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--rename-command", "CONFIG", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        processes.env_overrides["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: _pings(port), timeout=10, what="the Redis server to start")
        processes.start_relay()
        processes.wait_for_log("relay", "Redis keeps through a crash unknown (CONFIG GET is not allowed")
    finally:
        processes.stop_all()
        server.terminate()
        server.wait(timeout=10)


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
    except redis.ConnectionError:
        return False
