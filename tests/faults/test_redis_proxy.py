"""The test proxy that swallows a process's XADDs (tests/redisproxy.py) behaves as a dead link
would: once it has lost a command on a connection, nothing sent after it on that connection
reaches Redis. Forwarding the rest let the SADD of a pipeline's publish marks through without
its XADDs, and the relay then forgot events Redis never got (a CI failure of
tests/faults/test_crashes.py)."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from tests.processes import RedisServer
from tests.redisproxy import ReplyHoldingProxy

pytestmark = [pytest.mark.faults]


def _command(*args: str) -> bytes:
    return f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args)


def test_nothing_sent_after_a_swallowed_xadd_reaches_redis(private_redis: RedisServer):
    proxy = ReplyHoldingProxy(private_redis.port, hold_commands=True)
    proxy.hold.set()
    direct = redis.Redis(port=private_redis.port)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as link:
            link.sendall(_command("XADD", "proxy-test-stream", "*", "k", "v"))
            time.sleep(0.2)  # a second write, read by the proxy as a chunk of its own
            link.sendall(_command("SADD", "proxy-test-marks", "event-1"))
            time.sleep(0.2)
        proxy.close()
        time.sleep(0.2)  # what the proxy would still forward once closed
        assert direct.exists("proxy-test-stream") == 0
        assert direct.exists("proxy-test-marks") == 0, "the mark of an event Redis never got"
    finally:
        proxy.close()
        direct.close()
