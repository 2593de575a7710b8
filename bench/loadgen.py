"""A small, efficient HTTP/1.1 load generator: asyncio on raw keep-alive sockets, no HTTP
library in the hot loop. Runs in its own process (`python -m bench.loadgen CONFIG_JSON`) so
the benchmark can report how much CPU the load itself took.

Two modes: `duration` (each of N connections sends orders back to back for S seconds) and
`total` (N connections share a budget of requests, as fast as they can: a burst). Prints one
JSON object: status counts, errors by kind, latencies (ms), CPU seconds of this process.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from collections import Counter


def _request(host: str, port: int, token: str, body: bytes) -> bytes:
    return (
        f"POST /api/orders/ HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("connection closed by the server")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    close = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    body = await reader.readexactly(length) if length else b""
    return status, body, close


async def _client(config: dict, index: int, state: dict) -> None:
    rng = random.Random(index)
    host, port = config["host"], config["port"]
    token = config["tokens"][index % len(config["tokens"])]
    products = config["products"]
    timeout = config.get("timeout_s", 60)
    reader = writer = None
    while True:
        if "deadline" in state and time.monotonic() >= state["deadline"]:
            break
        if "remaining" in state:
            if state["remaining"] <= 0:
                break
            state["remaining"] -= 1
        body = json.dumps(
            {
                "items": [
                    {"product_id": p, "quantity": rng.randint(1, 3)} for p in rng.sample(products, rng.randint(1, 3))
                ]
            }
        ).encode()
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.write(_request(host, port, token, body))
            status, payload, close = await asyncio.wait_for(_read_response(reader), timeout)
        except TimeoutError:
            state["errors"]["timeout"] += 1
            writer = _close(writer)
            continue
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            state["errors"][type(exc).__name__] += 1
            writer = _close(writer)
            await asyncio.sleep(0.05)
            continue
        state["latencies"].append((time.perf_counter() - started) * 1000)
        state["statuses"][status] += 1
        if status >= 400 and len(state["samples"]) < 5:
            state["samples"].append({"status": status, "body": payload[:300].decode(errors="replace")})
        if status in (429, 503) and not payload.startswith(b"{"):
            state["errors"]["refusal_without_json"] += 1
        if close:
            writer = _close(writer)
    _close(writer)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()
    return None


async def run(config: dict) -> dict:
    state: dict = {"latencies": [], "statuses": Counter(), "errors": Counter(), "samples": []}
    if "duration_s" in config:
        state["deadline"] = time.monotonic() + config["duration_s"]
    else:
        state["remaining"] = config["total"]
    started = time.monotonic()
    await asyncio.gather(*(_client(config, i, state) for i in range(config["connections"])))
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "statuses": {str(k): v for k, v in state["statuses"].items()},
        "errors": dict(state["errors"]),
        "latencies_ms": state["latencies"],
        "samples": state["samples"],
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = config["connections"] + 100
    if soft < wanted:  # a burst opens a socket per connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(wanted, soft), hard), hard))
    sys.stdout.write(json.dumps(asyncio.run(run(config))))


if __name__ == "__main__":
    main()
