"""One reading of every request: the same odd request sent to the order intake (the desk, the
default) and to Django's view (ORDER_INTAKE=sync), both as the Procfile starts the web, gets the
same answer: doubled headers are 400, media types are case-insensitive, a charset other than
UTF-8 is 415, a UTF-16 body is refused like any other body that is not UTF-8 JSON."""

from __future__ import annotations

import json
import socket

import pytest
from rest_framework.authtoken.models import Token

from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def send(web: str, head: list[str], body: bytes) -> tuple[int, dict]:
    status, _, answer = exchange(web, head, body)
    return status, answer


def exchange(web: str, head: list[str], body: bytes) -> tuple[int, dict[str, str], dict]:
    """(status, headers by lower-case name, JSON body) of one request on a connection of its own."""
    host, port = web.removeprefix("http://").split(":")
    lines = ["POST /api/orders/ HTTP/1.1", *head, f"Content-Length: {len(body)}", "Connection: close", "", ""]
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall("\r\n".join(lines).encode() + body)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    head_block, _, answer = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode("latin-1").lower().split(": ", 1) for line in head_block.split(b"\r\n") if line)
    return int(status_line.split()[1]), headers, json.loads(answer or b"{}")


@pytest.fixture
def webs(processes):
    desk = processes.start_web("web-desk")
    processes.env_overrides["ORDER_INTAKE"] = "sync"
    sync = processes.start_web("web-sync")
    return desk, sync


def test_every_odd_request_gets_the_same_answer_from_the_intake_and_from_django(webs):
    product = ProductFactory(stock=100)
    alice, bob = (Token.objects.create(user=UserFactory()).key for _ in range(2))
    order = json.dumps({"items": [{"product_id": product.pk, "quantity": 1}]})
    base = ["Host: localhost", f"Authorization: Token {alice}", "Content-Type: application/json"]
    cases = {
        "two Authorization": (["Host: localhost", f"Authorization: Token {alice}", f"Authorization: Token {bob}",
                               "Content-Type: application/json"], order.encode(), 400, "duplicate_header"),
        "two Content-Type": ([*base, "Content-Type: text/plain"], order.encode(), 400, "duplicate_header"),
        "two Host": ([*base, "Host: elsewhere"], order.encode(), 400, "duplicate_header"),
        "two Idempotency-Key": ([*base, "Idempotency-Key: a", "Idempotency-Key: b"], order.encode(), 400,
                                "duplicate_header"),
        "two Content-Length": ([*base, f"Content-Length: {len(order)}"], order.encode(), 400, "bad_request"),
        "APPLICATION/JSON": ([base[0], base[1], "Content-Type: APPLICATION/JSON"], order.encode(), 201, None),
        "charset=UTF-8": ([base[0], base[1], "Content-Type: application/json; charset=UTF-8"], order.encode(), 201,
                          None),
        "charset=utf-16": ([base[0], base[1], "Content-Type: application/json; charset=utf-16"],
                           order.encode("utf-16"), 415, "unsupported_media_type"),
        "a UTF-16 body": (base, order.encode("utf-16"), 400, ""),
    }  # fmt: skip
    for web in webs:
        for case, (head, body, status, code) in cases.items():
            got_status, got = send(web, head, body)
            assert got_status == status, f"{case} at {web}: {got_status} {got}"
            if code is not None:
                assert not code or got.get("code") == code, f"{case} at {web}: {got}"
                assert got.get("detail"), f"{case} at {web}: {got}"
            else:
                assert got["status"] == "pending", f"{case} at {web}: {got}"


SECURITY = ("x-content-type-options", "referrer-policy", "cross-origin-opener-policy", "strict-transport-security")


@pytest.fixture
def proxied_webs(processes):
    """The two paths behind a proxy that terminates TLS, with HSTS preload on (one setting more
    that a copy of Django's rules would have to follow)."""
    processes.env_overrides.update(TRUST_X_FORWARDED_PROTO="true", SECURE_HSTS_PRELOAD="true")
    desk = processes.start_web("web-desk")
    processes.env_overrides["ORDER_INTAKE"] = "sync"
    sync = processes.start_web("web-sync")
    return desk, sync


def test_the_intake_answers_with_the_security_headers_django_gives(proxied_webs):
    """The intake takes its security headers from Django's SecurityMiddleware: a 201 from the desk
    carries the same ones as a 201 from Django's view, over http and (behind the proxy's
    X-Forwarded-Proto) https, where HSTS is added."""
    webs = proxied_webs
    product = ProductFactory(stock=100)
    token = Token.objects.create(user=UserFactory()).key
    order = json.dumps({"items": [{"product_id": product.pk, "quantity": 1}]}).encode()
    base = ["Host: localhost", f"Authorization: Token {token}", "Content-Type: application/json"]
    for proxied in ([], ["X-Forwarded-Proto: https"]):
        seen = []
        for web in webs:
            status, headers, body = exchange(web, [*base, *proxied], order)
            assert status == 201, f"{web} {proxied}: {status} {body}"
            seen.append({name: headers.get(name) for name in SECURITY})
        desk, sync = seen
        assert desk == sync, proxied
        assert desk["x-content-type-options"] == "nosniff"
        assert (desk["strict-transport-security"] is not None) == bool(proxied), desk
        assert not proxied or desk["strict-transport-security"].endswith("; preload"), desk
