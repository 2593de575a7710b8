"""The spike's load generator (bench/spike.py) against a fake web on loopback: what it counts
for each kind of answer, and that a staying customer retries a "come back later" with the same
Idempotency-Key. No database, no timing asserted."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bench.spike import Key, Spike, parse_response

Behaviour = Callable[[str, int], Awaitable[bytes | None]]


def answer(status: int, body: dict[str, Any] | None = None, headers: str = "") -> bytes:
    payload = json.dumps(body or {}).encode()
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def serve(behaviour: Behaviour, config: dict[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
    """Run a Spike against a server answering each request with `behaviour(key, nth time the
    key is seen)`: bytes to send, or None to close the connection without answering."""
    seen: Counter[str] = Counter()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
                await reader.readexactly(int(headers["Content-Length"]))
                key = headers["Idempotency-Key"]
                seen[key] += 1
                response = await behaviour(key, seen[key])
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spike = Spike({"host": "127.0.0.1", "port": port, "products": [1], "arrival_s": 0.05, **config})
    async with server:
        await spike.run()
    return spike.report(), seen


def test_each_kind_of_answer_is_counted_under_its_outcome(monkeypatch: pytest.MonkeyPatch):
    async def behaviour(key: str, nth: int) -> bytes | None:
        customer = keys_by_customer[key]
        if customer == 0:
            return answer(201, {"id": f"order-{key}"})
        if customer == 1:
            return answer(429, {"detail": "slow down"}, "Retry-After: 3\r\n")
        if customer == 2:
            return b"HTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
        if customer == 3:
            return answer(400, {"items": ["bad"]})
        if customer == 4:
            return answer(500)
        if customer == 5:
            await asyncio.sleep(5)  # past the customer's patience
            return None
        return None  # 6: closed without an answer

    keys_by_customer: dict[str, int] = {}
    new_key = Spike.new_key

    def remember(self: Spike, customer: int, phase: int) -> Key:
        key = new_key(self, customer, phase)
        keys_by_customer[key.key] = customer
        return key

    monkeypatch.setattr(Spike, "new_key", remember)
    report, seen = asyncio.run(serve(behaviour, {"tokens": [f"token-{i}" for i in range(7)], "patience_s": 0.5}))
    phase1 = report["phase1"]

    assert {k: phase1[k] for k in ("taken", "refused", "other_4xx", "5xx", "other", "timed_out", "reset")} == {
        "taken": 1, "refused": 2, "other_4xx": 1, "5xx": 1, "other": 0, "timed_out": 1, "reset": 1,
    }  # fmt: skip
    assert phase1["answered"] + phase1["timed_out"] + phase1["reset"] == phase1["customers"] == 7
    assert (phase1["refused_with_retry_after"], phase1["refused_with_json"]) == (1, 1)
    assert phase1["errors"]["timed_out: waiting for the answer"] == 1
    assert phase1["keys_taken"] == 1
    assert all(n == 1 for n in seen.values())  # phase 1 never retries
    [taken] = [row for row in report["keys"] if row[3]]
    assert taken[3] == f"order-{taken[2]}"


def test_a_staying_customer_retries_a_refusal_with_the_same_key_until_taken():
    async def behaviour(key: str, nth: int) -> bytes | None:
        if nth == 1:
            return answer(503, {"detail": "busy"}, "Retry-After: 0\r\n")
        if nth == 2:
            return None  # the retry's connection is lost: the customer reconnects and sends it again
        return answer(201, {"id": f"order-{key}"})

    report, seen = asyncio.run(
        serve(behaviour, {"tokens": ["a", "b"], "stay": 1, "stay_s": 0.5, "patience_s": 2, "reset_pause_s": 0})
    )
    phase2 = report["phase2"]

    assert phase2["keys_taken"] == phase2["taken"] > 0
    assert phase2["refused"] >= phase2["taken"]
    assert phase2["reset"] >= phase2["taken"]
    assert phase2["answered"] + phase2["timed_out"] + phase2["reset"] == phase2["requests"]
    phase2_keys = [row for row in report["keys"] if row[1] == 2]
    for _, _, key, order_id, attempts in phase2_keys:
        if order_id:
            assert seen[key] == attempts == 3  # one key, sent three times, one order
            assert order_id == f"order-{key}"


def test_a_response_is_parsed_whole_or_not_at_all():
    whole = answer(202, {"id": "x", "status": "received"}, "Retry-After: 1\r\n")

    assert parse_response(bytearray(whole[:-1])) is None
    parsed, used = parse_response(bytearray(whole + b"HTTP/1.1"))  # type: ignore[misc]
    assert (parsed.status, parsed.retry_after, parsed.json, used) == (202, "1", True, len(whole))
