"""The order intake as customers meet it: the Procfile's web process (gunicorn with uvicorn
workers, orders.intake in front of Django) against the test database and a real Redis, with the
orders consumer run in-process (`pump`) or as a process where a test says so."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from rest_framework.authtoken.models import Token

from orders.models import Order
from orders.taking import record_key
from tests.factories import ProductFactory, StaffFactory, UserFactory
from tests.processes import RedisServer, wait_until
from tests.redisproxy import ReplyHoldingProxy

pytestmark = pytest.mark.django_db(transaction=True)


def post(web: str, token: str, lines: list[tuple[int, int]], **headers: str) -> tuple[int, dict[str, str], Any]:
    """POST an order; (status, headers, JSON body)."""
    body = json.dumps({"items": [{"product_id": p, "quantity": q} for p, q in lines]}).encode()
    request = urllib.request.Request(
        f"{web}/api/orders/", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}", **headers},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def get(web: str, token: str, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"{web}{path}", headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def shop(processes) -> dict[str, Any]:
    product = ProductFactory(stock=1000, price="9.90")
    alice, bob, staff = UserFactory(), UserFactory(), StaffFactory()
    tokens = {name: Token.objects.create(user=user).key for name, user in (("alice", alice), ("bob", bob),
                                                                            ("staff", staff))}  # fmt: skip
    return {"product": product.pk, "alice": alice, "tokens": tokens}


def test_an_order_is_taken_with_202_shown_as_received_to_its_customer_only_then_written_once(
    processes, shop, pump, transport
):
    web = processes.start_web()
    tokens, product = shop["tokens"], shop["product"]

    status, headers, order = post(web, tokens["alice"], [(product, 2)])

    assert status == 202, order
    assert order["status"] == "received"
    assert order["total"] == "19.80"
    assert headers["location"] == f"/api/orders/{order['id']}/"
    assert not Order.objects.exists()  # taken, not written yet
    assert get(web, tokens["alice"], order["url"]) == (200, order)
    assert get(web, tokens["bob"], order["url"])[0] == 404
    assert get(web, tokens["staff"], order["url"])[0] == 200

    record = transport.key(record_key(order["id"]))
    assert transport.client.exists(record)
    pump()
    assert not transport.client.exists(record)  # the database has it: Redis keeps only what is in intake
    pump()  # the same intake entries again: nothing more
    written = Order.objects.get()
    assert str(written.pk) == order["id"]
    assert written.status == Order.Status.CONFIRMED
    assert written.customer_id == shop["alice"].pk
    status, shown = get(web, tokens["alice"], order["url"])
    assert status == 200
    assert shown["status"] == "confirmed"


def test_a_retry_with_the_idempotency_key_gets_the_same_order_and_another_body_is_422(processes, shop, pump):
    web = processes.start_web()
    token, product = shop["tokens"]["alice"], shop["product"]

    first = post(web, token, [(product, 1)], **{"Idempotency-Key": "retry-1"})
    again = post(web, token, [(product, 1)], **{"Idempotency-Key": "retry-1"})
    other = post(web, token, [(product, 3)], **{"Idempotency-Key": "retry-1"})
    pump()
    after_written = post(web, token, [(product, 1)], **{"Idempotency-Key": "retry-1"})

    assert first[0] == 202
    assert again[0] == 202
    assert again[2]["id"] == first[2]["id"]
    assert again[1].get("idempotent-replayed") == "true"
    assert other[0] == 422
    assert other[2]["code"] == "idempotency_key_reused"
    assert after_written[0] in (201, 202)
    assert after_written[2]["id"] == first[2]["id"]
    pump()
    assert Order.objects.count() == 1


def test_orders_still_in_intake_count_towards_the_pending_limit_and_the_rate_limits_hold(processes, shop):
    processes.env_overrides.update(MAX_PENDING_ORDERS_PER_CUSTOMER="2", THROTTLE_ORDERS="3/min")
    web = processes.start_web()
    alice, bob, product = shop["tokens"]["alice"], shop["tokens"]["bob"], shop["product"]

    answers = [post(web, alice, [(product, 1)]) for _ in range(3)]
    assert [a[0] for a in answers] == [202, 202, 429]
    assert answers[2][2]["code"] == "too_many_pending_orders"
    assert answers[2][1]["retry-after"]

    assert post(web, bob, [(product, 1)])[0] == 202
    assert post(web, bob, [(product, 1)])[0] == 202
    held = post(web, bob, [(product, 1)])  # the third: within the rate, over the pending limit
    assert held[0] == 429
    assert held[2]["code"] == "too_many_pending_orders"
    fourth = post(web, bob, [(product, 1)])
    assert fourth[0] == 429
    assert fourth[2]["code"] == "throttled"
    assert int(fourth[1]["retry-after"]) >= 1


def test_bad_requests_get_the_apis_own_answers(processes, shop):
    web = processes.start_web()
    token, product = shop["tokens"]["alice"], shop["product"]

    status, _, body = post(web, token, [(10**9, 1)])
    assert status == 400
    assert body == {
        "detail": "The request is not valid: see the message for each field.", "code": "invalid",
        "items": [{"product_id": [f"Product {10**9} does not exist."]}],
    }  # fmt: skip
    assert post(web, "not-a-token", [(product, 1)])[0] == 401
    assert post(web, token, [(product, 0)])[0] == 400
    assert post(web, token, [])[0] == 400
    assert post(web, token, [(product, 1)], **{"Idempotency-Key": "\u00e9"})[0] == 400
    assert post(web, token, [(product, 1)], **{"Idempotency-Key": ""})[0] == 400
    status, _, body = post(web, token, [(product, 1)], Prefer="return=representation")
    assert status == 201
    assert body["status"] == "pending"
    deep = urllib.request.Request(
        f"{web}/api/orders/", data=b"[" * 5000, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(deep, timeout=10)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["detail"]


def test_with_redis_unreachable_orders_are_placed_through_the_database(processes, shop):
    processes.env_overrides.update(REDIS_URL="redis://127.0.0.1:1/0")
    web = processes.start_web()

    status, _, order = post(web, shop["tokens"]["alice"], [(shop["product"], 1)])

    assert status == 201
    assert order["status"] == "pending"
    assert Order.objects.filter(pk=order["id"]).exists()


def test_a_request_past_the_deadline_is_refused_with_503_and_never_taken(processes, shop, transport):
    processes.env_overrides.update(INTAKE_DEADLINE_S="0")
    web = processes.start_web()

    status, headers, body = post(web, shop["tokens"]["alice"], [(shop["product"], 1)])

    assert status == 503
    assert body["code"] == "busy"
    assert headers["retry-after"]
    assert transport.client.xlen(transport.key("orders.intake")) == 0


def test_a_request_whose_client_left_before_it_was_handled_creates_nothing(processes, shop, transport, redis_server):
    """Redis's replies are held so the round trip in flight cannot end; a customer who sends an
    order meanwhile and closes the connection is gone when the next round trip leaves."""
    port = int(redis_server.rsplit(":", 1)[1].split("/")[0]) if redis_server.startswith("redis://") else None
    if port is None:
        pytest.skip("the proxy speaks TCP; REDIS_URL is a Unix socket here (CI runs it against the Redis server)")
    proxy = ReplyHoldingProxy(port, hold_all=True)
    db = redis_server.rsplit("/", 1)[1]
    processes.env_overrides.update(REDIS_URL=f"redis://127.0.0.1:{proxy.port}/{db}", THROTTLES_ENABLED="false")
    web = processes.start_web()
    token, product = shop["tokens"]["alice"], shop["product"]
    try:
        assert post(web, token, [(product, 1)])[0] == 202  # token, catalog and script warm
        proxy.hold.set()
        held: list[Any] = []
        blocked = threading.Thread(target=lambda: held.append(post(web, token, [(product, 2)])))
        blocked.start()
        wait_until(lambda: proxy._holding and any(h.is_set() for h in proxy._holding), timeout=10,
                   what="the round trip in flight to be held")  # fmt: skip

        host, web_port = web.removeprefix("http://").split(":")
        body = json.dumps({"items": [{"product_id": product, "quantity": 3}]}).encode()
        with socket.create_connection((host, int(web_port))) as left:
            left.sendall(
                f"POST /api/orders/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Token {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.5)  # read by the web, waiting behind the held round trip
        time.sleep(0.5)  # the web notices the connection closed
        proxy.release()
        blocked.join(timeout=20)
    finally:
        proxy.release()
        proxy.close()

    assert held
    assert held[0][0] == 202
    entries = transport.client.xrange(transport.key("orders.intake"))
    quantities = [json.loads(fields[b"event"])["payload"]["items"][0]["quantity"] for _, fields in entries]
    assert sorted(quantities) == [1, 2]  # the one whose customer left was never taken


def test_every_order_answered_taken_survives_redis_being_killed_mid_spike(processes, tmp_path, settings, key_prefix):
    """Redis with appendfsync always, SIGKILLed while customers place orders and started again:
    every order answered 202 (or 201 by the database path meanwhile) exists in the end."""
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    server.directory.mkdir()
    server.start()
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0
    product = ProductFactory(stock=100_000)
    customers = [Token.objects.create(user=UserFactory()).key for _ in range(8)]
    processes.env_overrides.update(REDIS_URL=server.url, THROTTLES_ENABLED="false", MAX_PENDING_ORDERS_PER_CUSTOMER="0")
    web = processes.start_web(workers=2)
    processes.start_consumer("orders", "orders-1")

    taken: list[str] = []
    other: list[int] = []
    stop = threading.Event()

    def customer(token: str) -> None:
        while not stop.is_set():
            try:
                status, _, body = post(web, token, [(product.pk, 1)], **{"Idempotency-Key": str(uuid.uuid4())})
            except OSError:
                continue
            (taken.append(body["id"]) if status in (201, 202) else other.append(status))

    threads = [threading.Thread(target=customer, args=(t,)) for t in customers]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(taken) >= 200, timeout=60, what="200 orders taken")
        server.kill()
        time.sleep(1.0)
        server.start()
        count = len(taken)
        wait_until(lambda: len(taken) >= count + 200, timeout=60, what="200 more orders after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)

    wait_until(lambda: Order.objects.filter(pk__in=taken).count() == len(set(taken)), timeout=90,
               what="every order answered taken to be written")  # fmt: skip
    assert len(set(taken)) == len(taken)
    assert set(other) <= {503}
    server.stop()
