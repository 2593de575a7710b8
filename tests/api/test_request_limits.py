"""The web's own limits on a request's size and time (config.uvicorn), tried against the web as
the Procfile starts it: a long request line is 414, too many or too large header fields 431, a
100 MB header is refused after its first kilobytes and leaves the worker's memory as it was, and
a client too slow to send its head or its body is answered 408 and closed."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def exchange(web: str, raw: bytes, *, wait_s: float = 10.0) -> tuple[int, dict]:
    """Send `raw`, read the answer until the server closes; (status, JSON body)."""
    host, port = web.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as conn:
        try:
            conn.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before all of it was sent: the answer is still there to read
        return read_answer(conn)


def read_answer(conn: socket.socket) -> tuple[int, dict]:
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def worker_pids(master: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def test_a_long_request_line_is_414_and_too_many_or_too_large_header_fields_are_431(processes):
    web = processes.start_web()

    status, body = exchange(web, b"GET /api/?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert (status, body["code"]) == (414, "request_uri_too_long")
    many = b"".join(b"X-F%d: v\r\n" % i for i in range(101))
    status, body = exchange(web, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n")
    assert (status, body["code"]) == (431, "request_header_fields_too_large")
    status, body = exchange(web, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
    assert (status, body["code"]) == (431, "request_header_fields_too_large")
    # within the limits: served
    fine = b"".join(b"X-F%d: v\r\n" % i for i in range(90))
    status, _ = exchange(web, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + fine + b"\r\n")
    assert status == 200


def test_a_100_mb_header_is_refused_early_and_the_worker_keeps_its_memory(processes):
    web = processes.start_web()
    exchange(web, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")  # warm
    (worker,) = worker_pids(processes.procs["web"].pid)
    before = rss_kib(worker)

    host, port = web.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Huge: ")
        chunk = b"h" * (1 << 20)
        try:
            while sent < 100 * (1 << 20):
                conn.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body = read_answer(conn)

    assert (status, body["code"]) == (431, "request_header_fields_too_large")
    assert sent < 100 * (1 << 20), "the web read the whole 100 MB"
    time.sleep(0.5)
    assert rss_kib(worker) - before < 20 * 1024, f"the worker grew from {before} KiB to {rss_kib(worker)} KiB"


def test_a_client_too_slow_to_send_its_head_or_its_body_is_answered_408_and_closed(processes):
    processes.env_overrides.update(WEB_HEADER_TIMEOUT_S="1", WEB_BODY_TIMEOUT_S="1")
    web = processes.start_web()
    host, port = web.removeprefix("http://").split(":")

    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")  # and nothing more
        status, body = read_answer(conn)
    assert (status, body["code"]) == (408, "request_timeout")
    assert time.monotonic() - started < 5

    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /api/auth/token/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"username": '
        )
        status, _ = read_answer(conn)
    assert status == 408

    with socket.create_connection((host, int(port)), timeout=10) as conn:
        status, _ = read_answer(conn)  # connected, never sent a byte
    assert status == 408
