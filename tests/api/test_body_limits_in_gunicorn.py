"""Unbounded bodies, tried against the real web process (gunicorn as the Procfile runs it): a
body the server refuses is never read to its end. The client sends the headers and only the
start of the body, then waits: an answer that comes means the server did not wait for the rest."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


def send_partly(base_url: str, path: str, content_type: str, declared: int, sent: int) -> tuple[int, bytes]:
    """Declare a body of `declared` bytes, send only `sent` of them, return (status, response)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {declared}\r\nAccept: application/json\r\n\r\n".encode()
        )
        s.sendall(b"x" * sent)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = s.recv(65536)  # times out (a test failure) if the server waits for the body
            if not chunk:
                break
            response += chunk
    status = int(response.split(b" ", 2)[1])
    return status, response


@pytest.fixture
def web(processes) -> str:
    return processes.start_web()


def test_a_50_mb_multipart_body_to_the_token_endpoint_is_refused_before_it_is_read(web):
    status, response = send_partly(web, "/api/auth/token/", "multipart/form-data; boundary=x", 50 * MB, 64 * 1024)

    assert status == 413
    assert b"application/json" in response


def test_a_multipart_body_under_the_size_limit_is_415_before_it_is_read(web):
    status, response = send_partly(web, "/api/auth/token/", "multipart/form-data; boundary=x", MB // 2, 16 * 1024)

    assert status == 415
    assert b"application/json" in response


def test_a_large_json_order_is_refused_before_it_is_read(web):
    status, _ = send_partly(web, "/api/orders/", "application/json", 50 * MB, 64 * 1024)

    assert status == 413
