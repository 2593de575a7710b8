"""The spike's load generator: thousands of customers arriving at once, as people, not as a
queue. Runs in its own process (`python -m bench.spike CONFIG`, CONFIG being JSON text or the
path of a JSON file: ten thousand tokens do not fit in one command-line argument) so the
benchmark can report the CPU the load itself took. asyncio on raw sockets (one
`asyncio.Protocol` per connection, no HTTP library), which keeps 10,000 sockets cheap.

Phase 1, arrival: customer i opens its own TCP connection at `i * arrival_s / customers`
seconds (a ramp over about one second; the loop opens them without waiting for answers), sends
one `POST /api/orders/` with a fresh Idempotency-Key, and waits `patience_s` from the start of
its connect() for the answer, then closes the socket. No retry.

Phase 2, staying customers (once every phase-1 customer has its answer or gave up): the first
`stay` customers each keep one keep-alive connection and place orders back to back for
`stay_s`. A "come back later" (429/503) waits its Retry-After (1 s if none, at most
`retry_after_cap_s`) and sends the same request with the same key again; a timeout or a
connection lost without an answer reconnects and sends it again too, as does a 5xx after a
second; another 4xx gives that order up. A request in flight when the period ends gets its
answer (or its patience); a key not taken by then is abandoned.

Outcomes of a request: `taken` (201 or 202 with the order's "id" in its JSON body), `refused`
(429 or 503), `other_4xx`, `5xx` (other than 503), `other` (any other answer, 2xx without an
id included: expected never), `timed_out` (no answer within patience), `reset` (connection
refused, reset or closed without an answer, or any other socket error). Prints one JSON object
(see `Spike.report`).

`{"mode": "xadd", ...}` runs instead one process of the spike's ceiling: `clients` redis-py
asyncio connections XADDing one entry per call (no pipelining) to `stream` for `seconds`,
starting at the wall-clock time `start_at` (so that several processes overlap).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import summary

OUTCOMES = ("taken", "refused", "other_4xx", "5xx", "other", "timed_out", "reset")
ANSWERED = ("taken", "refused", "other_4xx", "5xx", "other")


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client understands."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    retry_after: str | None
    json: bool  # Content-Type says JSON and the body looks like a JSON object
    close: bool  # the server will close the connection after it


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body starting at `start`: (body, end offset), or None while incomplete."""
    body = bytearray()
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
        except ValueError as exc:
            raise ProtocolError("bad chunk size") from exc
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", at - 2)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < at + size + 2:
            return None
        body += buffer[at : at + size]
        at += size + 2


def parse_response(buffer: bytearray, *, eof: bool = False) -> tuple[Answer, int] | None:
    """One response at the start of `buffer`: (answer, bytes it used), or None while incomplete.
    `eof`: the server closed its side, which ends a body that has no length."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = bytes(buffer[:head_end]).split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ProtocolError(f"not an HTTP status line: {lines[0][:80]!r}")
    try:
        status = int(parts[1])
    except ValueError as exc:
        raise ProtocolError(f"bad status: {lines[0][:80]!r}") from exc
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    start = head_end + 4
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        if len(buffer) < start + length:
            return None
        body, end = bytes(buffer[start : start + length]), start + length
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        chunked = _dechunk(buffer, start)
        if chunked is None:
            return None
        body, end = chunked
    elif status in (204, 304) or status < 200:
        body, end = b"", start
    elif eof:
        body, end = bytes(buffer[start:]), len(buffer)
    else:
        return None
    connection = headers.get(b"connection", b"").lower()
    close = connection == b"close" or (parts[0] == b"HTTP/1.0" and connection != b"keep-alive")
    retry_after = headers.get(b"retry-after")
    answer = Answer(
        status=status,
        body=body,
        retry_after=retry_after.decode("latin-1") if retry_after is not None else None,
        json=b"json" in headers.get(b"content-type", b"").lower() and body.lstrip().startswith(b"{"),
        close=close or eof,
    )
    return answer, end


class Client(asyncio.Protocol):
    """One customer's TCP connection: writes a request, then parses its answer (one request at a
    time, HTTP/1.1 keep-alive)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False  # by either side: the connection cannot carry another request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._deliver(eof=False)

    def eof_received(self) -> bool | None:
        self.closed = True
        self._deliver(eof=True)
        self._fail(ConnectionResetError("the server closed the connection without an answer"))
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._deliver(eof=True)
        self._fail(exc or ConnectionResetError("the connection closed without an answer"))

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        """Write `request`; the future resolves with its answer."""
        if self.closed or self.transport is None:
            raise ConnectionResetError("the connection is closed")
        self.buffer.clear()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _deliver(self, *, eof: bool) -> None:
        if self.waiter is None or self.waiter.done():
            return
        try:
            parsed = parse_response(self.buffer, eof=eof)
        except (ProtocolError, ValueError) as exc:
            self.waiter.set_exception(ProtocolError(str(exc)))
            return
        if parsed is not None:
            answer, used = parsed
            del self.buffer[:used]
            self.waiter.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


def order_request(host: str, port: int, token: str, key: str, body: bytes) -> bytes:
    return (
        f"POST /api/orders/ HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: application/json\r\nAccept: application/json\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def classify(answer: Answer) -> tuple[str, str | None]:
    """(outcome, the order id of a taken order)."""
    if answer.status in (201, 202):
        try:
            order_id = json.loads(answer.body).get("id") if answer.json else None
        except (ValueError, AttributeError):
            order_id = None
        return ("taken", str(order_id)) if order_id else ("other", None)
    if answer.status in (429, 503):
        return "refused", None
    if 400 <= answer.status < 500:
        return "other_4xx", None
    if answer.status >= 500:
        return "5xx", None
    return "other", None


def retry_after_s(answer: Answer, cap: float) -> float:
    """The wait a "come back later" asks for: Retry-After's seconds (1 s if absent or a date),
    at most `cap`."""
    try:
        wait = float(answer.retry_after) if answer.retry_after is not None else 1.0
    except ValueError:
        wait = 1.0
    return max(0.0, min(wait, cap))


def quantiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p90, p99, max (ms, rounded to 0.1) and n of a latency sample; None when empty."""
    return summary(values, (50, 90, 99), digits=1, empty=None)


@dataclass
class Tally:
    """What one phase's requests met."""

    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # kinds of timed_out / reset
    refused_with_retry_after: int = 0
    refused_with_json: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # answered requests only
    connect_ms: list[float] = field(default_factory=list)  # connects that completed
    samples: list[dict[str, Any]] = field(default_factory=list)  # the first answers not taken
    first_taken_wall: float | None = None
    last_taken_wall: float | None = None

    def answered(self, answer: Answer, outcome: str, latency_ms: float) -> None:
        self.outcomes[outcome] += 1
        self.statuses[str(answer.status)] += 1
        self.latencies_ms.append(latency_ms)
        if outcome == "refused":
            self.refused_with_retry_after += answer.retry_after is not None
            self.refused_with_json += answer.json
        if outcome == "taken":
            now = time.time()
            self.first_taken_wall = self.first_taken_wall or now
            self.last_taken_wall = now
        elif len(self.samples) < 5:
            body = answer.body[:300].decode(errors="replace")
            self.samples.append({"status": answer.status, "retry_after": answer.retry_after, "body": body})

    def failed(self, outcome: str, kind: str) -> None:
        self.outcomes[outcome] += 1
        self.errors[f"{outcome}: {kind}"] += 1

    def report(self) -> dict[str, Any]:
        refused = self.outcomes["refused"]
        return {
            "requests": sum(self.outcomes.values()),
            "answered": sum(self.outcomes[o] for o in ANSWERED),
            **{o: self.outcomes[o] for o in OUTCOMES},
            "refused_with_retry_after": self.refused_with_retry_after,
            "refused_without_retry_after": refused - self.refused_with_retry_after,
            "refused_with_json": self.refused_with_json,
            "refused_without_json": refused - self.refused_with_json,
            "statuses": dict(sorted(self.statuses.items())),
            "errors": dict(self.errors.most_common()),
            "latency_ms": quantiles(self.latencies_ms),
            "connect_ms": quantiles(self.connect_ms),
            "samples": self.samples,
        }


@dataclass
class Key:
    """One order a customer meant to place: its Idempotency-Key and what became of it."""

    customer: int  # index into the config's tokens
    phase: int
    key: str
    body: bytes
    attempts: int = 0
    order_id: str | None = None  # set once the customer was told "taken"

    def row(self) -> list[Any]:
        return [self.customer, self.phase, self.key, self.order_id, self.attempts]


class Spike:
    """The two phases against one web; `report()` is what the process prints."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.host: str = config["host"]
        self.port: int = config["port"]
        self.tokens: list[str] = config["tokens"]
        self.products: list[int] = config["products"]
        self.arrival_s: float = config.get("arrival_s", 1.0)
        self.patience_s: float = config.get("patience_s", 30.0)
        self.stay: int = min(config.get("stay", 0), len(self.tokens))
        self.stay_s: float = config.get("stay_s", 0.0)
        self.retry_after_cap_s: float = config.get("retry_after_cap_s", 5.0)
        self.reset_pause_s: float = config.get("reset_pause_s", 0.5)
        self.keys: list[Key] = []
        self.tallies = {1: Tally(), 2: Tally()}
        self.reconnects = 0  # phase 2: connections the server had closed (keep-alive timeout), reopened
        self.times: dict[str, float] = {}
        self.last_request_end_wall = 0.0

    def new_key(self, customer: int, phase: int) -> Key:
        product = self.products[(customer + len(self.keys)) % len(self.products)]
        body = json.dumps({"items": [{"product_id": product, "quantity": 1}]}).encode()
        key = Key(customer=customer, phase=phase, key=str(uuid.uuid4()), body=body)
        self.keys.append(key)
        return key

    async def connect(self) -> Client:
        _, client = await asyncio.get_running_loop().create_connection(Client, self.host, self.port)
        return client

    async def attempt(self, key: Key, client: Client | None, tally: Tally) -> tuple[str, Answer | None, Client | None]:
        """Send `key`'s request on `client` (or a new connection), within patience from the start
        of this attempt. Returns the outcome, the answer, and the connection if it is reusable."""
        request = order_request(self.host, self.port, self.tokens[key.customer], key.key, key.body)
        started = time.perf_counter()
        key.attempts += 1
        connected = client is not None
        try:
            async with asyncio.timeout(self.patience_s):
                if client is None:
                    client = await self.connect()
                    connected = True
                    tally.connect_ms.append((time.perf_counter() - started) * 1000)
                answer = await client.send(request)
        except TimeoutError:
            tally.failed("timed_out", "waiting for the answer" if connected else "connecting")
            return "timed_out", None, _closed(client)
        except (OSError, ProtocolError) as exc:
            tally.failed("reset", type(exc).__name__)
            return "reset", None, _closed(client)
        finally:
            self.last_request_end_wall = max(self.last_request_end_wall, time.time())
        outcome, order_id = classify(answer)
        tally.answered(answer, outcome, (time.perf_counter() - started) * 1000)
        if order_id:
            key.order_id = order_id
        if answer.close or client.closed:
            client = _closed(client)
        return outcome, answer, client

    async def arrive(self, customer: int) -> None:
        """Phase 1: one customer, one connection, one request, no retry."""
        key = self.new_key(customer, 1)
        _, _, client = await self.attempt(key, None, self.tallies[1])
        _closed(client)

    async def stay_and_order(self, customer: int, deadline: float) -> None:
        """Phase 2: one customer ordering again and again on one keep-alive connection."""
        tally = self.tallies[2]
        client: Client | None = None
        key: Key | None = None
        while time.perf_counter() < deadline:
            if key is None:
                key = self.new_key(customer, 2)
            if client is not None and client.closed:
                client = None
                self.reconnects += 1
            outcome, answer, client = await self.attempt(key, client, tally)
            pause = 0.0
            if outcome == "taken":
                key = None
            elif outcome == "refused" and answer is not None:
                pause = retry_after_s(answer, self.retry_after_cap_s)
            elif outcome == "reset":
                pause = self.reset_pause_s
            elif outcome == "5xx":
                pause = 1.0
            elif outcome in ("other_4xx", "other"):
                key = None  # the same request would meet the same answer
            if pause:
                await asyncio.sleep(min(pause, max(deadline - time.perf_counter(), 0.0)))
        _closed(client)

    async def ramp(self, customers: int, start: Callable[[int], Awaitable[None]]) -> float:
        """Start `start(i)` for i in 0..customers-1, customer i at `i * arrival_s / customers`
        seconds (as fast as the loop can when it falls behind), and wait for them all. Returns the
        seconds from the first start to the last."""
        tasks = []
        began = time.perf_counter()
        for i in range(customers):
            due = began + i * self.arrival_s / customers
            ahead = due - time.perf_counter()
            if ahead > 0.001:
                await asyncio.sleep(ahead)
            tasks.append(asyncio.create_task(start(i)))
        ramp_s = time.perf_counter() - began
        await asyncio.gather(*tasks)
        return ramp_s

    async def run(self) -> None:
        self.times["phase1_start_wall"] = time.time()
        cpu = _cpu_s()
        started = time.perf_counter()
        self.times["phase1_ramp_s"] = await self.ramp(len(self.tokens), self.arrive)
        self.times["phase1_s"] = time.perf_counter() - started
        self.times["phase1_cpu_s"] = _cpu_s() - cpu
        self.times["phase1_end_wall"] = time.time()
        if self.stay and self.stay_s > 0:
            cpu = _cpu_s()
            started = time.perf_counter()
            self.times["phase2_start_wall"] = time.time()
            deadline = started + self.stay_s
            self.times["phase2_ramp_s"] = await self.ramp(self.stay, lambda i: self.stay_and_order(i, deadline))
            self.times["phase2_s"] = time.perf_counter() - started
            self.times["phase2_cpu_s"] = _cpu_s() - cpu

    def report(self) -> dict[str, Any]:
        """Per phase (`phase1`, `phase2`): the Tally's figures, plus `customers`; `ramp_s`, the
        seconds the ramp took to start every customer (each one's connect() begins as the loop
        runs it: intended `arrival_s`, longer when the loop cannot keep up); `seconds`, the phase
        from its first connect() to its last answer or give-up; `cpu_s`, this process's CPU
        seconds (user + system) in the phase; `keys`, the orders meant (one Idempotency-Key
        each), `keys_taken` those the customer was told were taken, `keys_abandoned` the rest;
        `taken_per_s`, keys taken per second from the phase's start to its last "taken" answer.
        Phase 2 adds `reconnects`, connections the server closed between two requests (its
        keep-alive timeout) and the customer opened again. At the top: `keys`, every order meant
        as [customer index, phase, key, order id if told taken, attempts]; `cpu_s`, this
        process's CPU seconds in all; `last_request_end_wall`, the wall-clock time (epoch
        seconds) of the last answer or give-up."""
        phases: dict[str, Any] = {}
        for phase, tally in self.tallies.items():
            meant = [k for k in self.keys if k.phase == phase]
            taken = sum(1 for k in meant if k.order_id)
            start = self.times.get(f"phase{phase}_start_wall")
            span = (tally.last_taken_wall - start) if start and tally.last_taken_wall else 0.0
            phases[f"phase{phase}"] = {
                "customers": len(self.tokens) if phase == 1 else self.stay,
                **tally.report(),
                "ramp_s": round(self.times.get(f"phase{phase}_ramp_s", 0.0), 3),
                "seconds": round(self.times.get(f"phase{phase}_s", 0.0), 2),
                "cpu_s": round(self.times.get(f"phase{phase}_cpu_s", 0.0), 2),
                "keys": len(meant),
                "keys_taken": taken,
                "keys_abandoned": len(meant) - taken,
                "taken_per_s": round(taken / span, 1) if span > 0 else None,
                "_latencies_ms": tally.latencies_ms,
            }
        phases["phase2"]["reconnects"] = self.reconnects
        return {
            **phases,
            "times": self.times,
            "last_request_end_wall": self.last_request_end_wall,
            "cpu_s": round(_cpu_s(), 2),
            "keys": [k.row() for k in self.keys],
        }


def _closed(client: Client | None) -> None:
    if client is not None:
        client.close()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the ceiling: raw XADD from many clients ------------------------------------------------------

# About the size of an order's intake message (an envelope with one line).
XADD_FIELDS = {
    "type": "OrderPlaced",
    "event": json.dumps(
        {
            "event_id": str(uuid.UUID(int=1)), "type": "OrderPlaced", "version": 1,
            "occurred_at": "2026-12-01T12:00:00.000000+00:00", "aggregate_type": "order",
            "aggregate_id": str(uuid.UUID(int=2)), "correlation_id": str(uuid.UUID(int=3)),
            "payload": {"order_id": str(uuid.UUID(int=2)), "customer_id": 1234, "total": "9.90",
                        "idempotency_key": str(uuid.UUID(int=4)), "items": [{"product_id": 1, "quantity": 1}]},
        }
    ),
}  # fmt: skip


async def xadd_clients(config: dict[str, Any]) -> dict[str, Any]:
    """`clients` connections each XADDing one entry per call, from `start_at` for `seconds`."""
    import redis.asyncio as aioredis

    clients: int = config["clients"]
    client = aioredis.Redis.from_url(config["url"], max_connections=clients)
    try:
        await asyncio.gather(*(client.ping() for _ in range(clients)))  # open every connection first
        await asyncio.sleep(max(config["start_at"] - time.time(), 0.0))
        started = time.perf_counter()
        stop = started + config["seconds"]
        counts = [0] * clients

        async def one(i: int) -> None:
            while time.perf_counter() < stop:
                await client.xadd(config["stream"], XADD_FIELDS)
                counts[i] += 1

        cpu = _cpu_s()
        await asyncio.gather(*(one(i) for i in range(clients)))
        return {"xadds": sum(counts), "seconds": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu}
    finally:
        await client.aclose()


def load_config(argument: str) -> dict[str, Any]:
    return json.loads(argument if argument.lstrip().startswith("{") else Path(argument).read_text())


def main() -> None:
    config = load_config(sys.argv[1])
    if config.get("mode") == "xadd":
        sys.stdout.write(json.dumps(asyncio.run(xadd_clients(config))))
        return
    # A socket per customer: as many descriptors as the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spike = Spike(config)
    asyncio.run(spike.run())
    sys.stdout.write(json.dumps(spike.report()))


if __name__ == "__main__":
    main()
