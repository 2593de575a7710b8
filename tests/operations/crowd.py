"""A crowd of HTTP clients for tests of the web as the Procfile starts it: each client keeps one
keep-alive connection and sends, back to back until the time is up, a GET of the product list
(two requests in three) or an order. Plain asyncio on sockets, in the test's own process."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Answers:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # no answer: timeout, reset, ...
    samples: dict[int, tuple[dict[str, str], bytes]] = field(default_factory=dict)  # one per status >= 400
    codes: Counter[tuple[int, str]] = field(default_factory=Counter)  # (status, the JSON body's code) >= 400
    by_method: dict[str, list[float]] = field(default_factory=dict)  # the latencies of GETs, of POSTs

    def figures(self) -> str:
        """Status counts and latency quantiles, of all and of each method, for a report."""
        each = "".join(f"; {method} {_quantiles(took)}" for method, took in sorted(self.by_method.items()))
        statuses = dict(sorted(self.statuses.items()))
        return f"{len(self.latencies_s)} answers {statuses}, {_quantiles(self.latencies_s)}{each}"

    @property
    def latencies_s(self) -> list[float]:
        return [seconds for took in self.by_method.values() for seconds in took]

    def took(self, method: str, seconds: float) -> None:
        self.by_method.setdefault(method, []).append(seconds)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def run_crowd(base_url: str, *, clients: int, seconds: float, tokens: list[str], products: list[int]) -> Answers:
    host, port = base_url.removeprefix("http://").split(":")
    answers = Answers()
    asyncio.run(_crowd(host, int(port), clients, seconds, tokens, products, answers))
    return answers


async def _crowd(
    host: str, port: int, clients: int, seconds: float, tokens: list[str], products: list[int], answers: Answers
) -> None:
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_client(host, port, i, deadline, tokens, products, answers) for i in range(clients)))


def _quantiles(latencies_s: list[float]) -> str:
    ordered = sorted(latencies_s) or [0.0]
    q = {p: ordered[min(int(len(ordered) * p / 100), len(ordered) - 1)] * 1000 for p in (50, 99)}
    return f"p50 {q[50]:.0f} ms, p99 {q[99]:.0f} ms, max {ordered[-1] * 1000:.0f} ms"


def _request(host: str, port: int, rng: random.Random, token: str, products: list[int]) -> bytes:
    head = f"Host: {host}:{port}\r\nAuthorization: Token {token}\r\nAccept: application/json\r\n"
    if rng.random() < 2 / 3:
        return f"GET /api/products/ HTTP/1.1\r\n{head}\r\n".encode()
    body = json.dumps({"items": [{"product_id": rng.choice(products), "quantity": 1}]}).encode()
    return (
        f"POST /api/orders/ HTTP/1.1\r\n{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _client(
    host: str, port: int, index: int, deadline: float, tokens: list[str], products: list[int], answers: Answers
) -> None:
    rng = random.Random(index)
    token = tokens[index % len(tokens)]
    reader = writer = None
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
            request = _request(host, port, rng, token, products)
            writer.write(request)
            status, headers, body = await asyncio.wait_for(_response(reader), 30)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            answers.errors[type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
            continue
        answers.took(request.split(b" ", 1)[0].decode(), time.monotonic() - started)
        answers.statuses[status] += 1
        if status >= 400:
            answers.samples.setdefault(status, (headers, body[:300]))
            answers.codes[status, _code(body)] += 1
        if headers.get("connection", "").lower() == "close":
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("connection closed by the server")
    status = int(status_line.split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    return status, headers, (await reader.readexactly(length) if length else b"")


def _code(body: bytes) -> str:
    try:
        return str(json.loads(body).get("code"))
    except (ValueError, AttributeError):
        return "<not JSON>"
