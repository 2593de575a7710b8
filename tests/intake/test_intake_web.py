"""The order intake as customers meet it: the Procfile's web process (gunicorn with uvicorn
workers, orders.intake and its order desk in front of Django) against the test database and a
real Redis, with the consumers run in-process (`pump`) or as processes where a test says so."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import psycopg
import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from orders.models import Order
from tests.concurrency import another_connection
from tests.factories import ProductFactory, StaffFactory, UserFactory
from tests.processes import wait_until

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


def wait_for_a_lock_wait(locker: psycopg.Connection, what: str) -> None:
    wait_until(
        lambda: locker.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0,
        timeout=10, what=what,
    )  # fmt: skip


@pytest.fixture
def shop(processes) -> dict[str, Any]:
    product = ProductFactory(stock=1000, price="9.90")
    alice, bob, staff = UserFactory(), UserFactory(), StaffFactory()
    tokens = {name: Token.objects.create(user=user).key for name, user in (("alice", alice), ("bob", bob),
                                                                            ("staff", staff))}  # fmt: skip
    return {"product": product.pk, "alice": alice, "tokens": tokens}


def test_an_order_is_placed_with_201_once_committed_and_shown_the_same_way_to_its_customer_only(processes, shop, pump):
    web = processes.start_web()
    tokens, product = shop["tokens"], shop["product"]

    status, headers, order = post(web, tokens["alice"], [(product, 2)])

    assert status == 201, order
    assert order["status"] == "pending"
    assert order["total"] == "19.80"
    assert headers["location"] == order["url"] == f"/api/orders/{order['id']}/"
    written = Order.objects.get()  # in the database before the answer left
    assert str(written.pk) == order["id"]
    assert written.customer_id == shop["alice"].pk
    assert get(web, tokens["alice"], order["url"]) == (200, order)  # one representation: 201 and GET
    assert get(web, tokens["bob"], order["url"])[0] == 404
    assert get(web, tokens["staff"], order["url"])[0] == 200
    pump()
    status, shown = get(web, tokens["alice"], order["url"])
    assert status == 200
    assert shown["status"] == "confirmed"


def test_a_retry_with_the_idempotency_key_gets_the_same_order_and_another_body_is_422(processes, shop, pump):
    web = processes.start_web()
    token, product = shop["tokens"]["alice"], shop["product"]

    first = post(web, token, [(product, 1)], **{"Idempotency-Key": "retry-1"})
    again = post(web, token, [(product, 1)], **{"Idempotency-Key": "retry-1"})
    other = post(web, token, [(product, 3)], **{"Idempotency-Key": "retry-1"})

    assert first[0] == 201
    assert again[0] == 201
    assert again[2] == first[2]
    assert again[1].get("idempotent-replayed") == "true"
    assert other[0] == 422
    assert other[2]["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_racing_retries_with_one_idempotency_key_make_one_order(processes, shop):
    web = processes.start_web(workers=2)
    token, product = shop["tokens"]["alice"], shop["product"]
    answers: list[Any] = []

    def place() -> None:
        answers.append(post(web, token, [(product, 1)], **{"Idempotency-Key": "racing"}))

    threads = [threading.Thread(target=place) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert [a[0] for a in answers] == [201] * 12
    assert len({a[2]["id"] for a in answers}) == 1
    assert sum(a[1].get("idempotent-replayed") != "true" for a in answers) == 1
    assert Order.objects.count() == 1


def test_the_pending_limit_and_the_rate_limits_hold(processes, shop):
    processes.env_overrides.update(MAX_PENDING_ORDERS_PER_CUSTOMER="2", THROTTLE_ORDERS="3/min")
    web = processes.start_web()
    alice, bob, product = shop["tokens"]["alice"], shop["tokens"]["bob"], shop["product"]

    answers = [post(web, alice, [(product, 1)]) for _ in range(3)]
    assert [a[0] for a in answers] == [201, 201, 429]
    assert answers[2][2]["code"] == "too_many_pending_orders"
    assert answers[2][1]["retry-after"]

    assert post(web, bob, [(product, 1)])[0] == 201
    assert post(web, bob, [(product, 1)])[0] == 201
    held = post(web, bob, [(product, 1)])  # the third: within the rate, over the pending limit
    assert held[0] == 429
    assert held[2]["code"] == "too_many_pending_orders"
    fourth = post(web, bob, [(product, 1)])
    assert fourth[0] == 429
    assert fourth[2]["code"] == "throttled"
    assert int(fourth[1]["retry-after"]) >= 1
    assert Order.objects.count() == 4


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
    deep = urllib.request.Request(
        f"{web}/api/orders/", data=b"[" * 5000, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(deep, timeout=10)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["detail"]
    assert not Order.objects.exists()


def test_a_customer_deactivated_after_their_token_was_cached_is_refused_and_nothing_is_placed(processes, shop):
    web = processes.start_web()
    token, product = shop["tokens"]["alice"], shop["product"]
    assert post(web, token, [(product, 1)])[0] == 201  # the token is in the worker's cache now

    shop["alice"].is_active = False
    shop["alice"].save(update_fields=["is_active"])
    status, _, body = post(web, token, [(product, 1)])

    assert status == 401
    assert body["code"] == "authentication_failed"
    assert Order.objects.count() == 1


def test_with_redis_unreachable_orders_are_still_placed(processes, shop):
    processes.env_overrides.update(REDIS_URL="redis://127.0.0.1:1/0")
    web = processes.start_web()

    status, _, order = post(web, shop["tokens"]["alice"], [(shop["product"], 1)])

    assert status == 201
    assert order["status"] == "pending"
    assert Order.objects.filter(pk=order["id"]).exists()


def test_a_request_past_the_deadline_is_refused_with_503_and_never_placed(processes, shop):
    processes.env_overrides.update(INTAKE_DEADLINE_S="0")
    web = processes.start_web()

    status, headers, body = post(web, shop["tokens"]["alice"], [(shop["product"], 1)])

    assert status == 503
    assert body["code"] == "busy"
    assert headers["retry-after"]
    assert not Order.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="holds a row lock from another connection")
def test_a_request_whose_client_left_before_its_transaction_began_places_nothing(processes, shop):
    """The desk's one connection is held behind a lock on the customer's row; a customer who
    sends an order meanwhile and closes the connection is gone when the next transaction begins."""
    processes.env_overrides.update(INTAKE_DESK_CONNECTIONS="1", THROTTLES_ENABLED="false")
    web = processes.start_web()
    token, product, alice = shop["tokens"]["alice"], shop["product"], shop["alice"]
    assert post(web, token, [(product, 1)])[0] == 201  # the token is cached

    held: list[Any] = []
    with another_connection() as locker:
        locker.execute("SELECT id FROM auth_user WHERE id = %s FOR UPDATE", [alice.pk])
        blocked = threading.Thread(target=lambda: held.append(post(web, token, [(product, 2)])))
        blocked.start()
        wait_for_a_lock_wait(locker, "the desk's transaction to wait for the lock")
        host, web_port = web.removeprefix("http://").split(":")
        body = json.dumps({"items": [{"product_id": product, "quantity": 3}]}).encode()
        with socket.create_connection((host, int(web_port))) as left:
            left.sendall(
                f"POST /api/orders/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Token {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.5)  # read by the web, waiting for the desk
        time.sleep(0.5)  # the web notices the connection closed
        locker.rollback()
        blocked.join(timeout=20)

    assert held
    assert held[0][0] == 201
    quantities = sorted(Order.objects.values_list("items__quantity", flat=True))
    assert quantities == [1, 2]  # the one whose customer left was never placed


@pytest.mark.skipif(connection.vendor != "postgresql", reason="holds a row lock from another connection")
def test_an_order_queued_behind_a_stuck_transaction_is_refused_at_its_deadline(processes, shop):
    """The desk's one connection is held behind a lock on a customer's row; an order that arrives
    meanwhile waits in the queue and is answered 503 with Retry-After at its deadline, not when
    the transaction ahead of it ends, and is never placed."""
    processes.env_overrides.update(INTAKE_DESK_CONNECTIONS="1", THROTTLES_ENABLED="false", INTAKE_DEADLINE_S="2")
    web = processes.start_web()
    tokens, product, alice = shop["tokens"], shop["product"], shop["alice"]
    assert post(web, tokens["alice"], [(product, 1)])[0] == 201  # the token is cached
    assert post(web, tokens["bob"], [(product, 1)])[0] == 201

    answers: dict[str, Any] = {}
    with another_connection() as locker:
        locker.execute("SELECT id FROM auth_user WHERE id = %s FOR UPDATE", [alice.pk])
        stuck = threading.Thread(target=lambda: answers.update(stuck=post(web, tokens["alice"], [(product, 2)])))
        stuck.start()
        wait_for_a_lock_wait(locker, "the desk's transaction to wait for the lock")
        started = time.monotonic()
        queued = threading.Thread(target=lambda: answers.update(queued=post(web, tokens["bob"], [(product, 3)])))
        queued.start()
        queued.join(timeout=6)  # the lock is still held meanwhile
        waited = time.monotonic() - started
        locker.rollback()
    stuck.join(timeout=20)

    assert "queued" in answers, "the queued order was not answered while the transaction ahead of it was stuck"
    status, headers, body = answers["queued"]
    assert status == 503, body
    assert body["code"] == "busy"
    assert headers["retry-after"]
    # Refused at its 2 s deadline while the lock still held the transaction ahead of it: not at
    # once (nothing refuses it before its deadline), not after the lock's release (6 s or more).
    assert 1.5 <= waited < 4, waited
    assert answers["stuck"][0] == 201  # taken before its deadline: its transaction decided
    quantities = sorted(Order.objects.values_list("items__quantity", flat=True))
    assert quantities == [1, 1, 2]  # the refused one was never placed


@pytest.mark.skipif(connection.vendor != "postgresql", reason="holds a row lock from another connection")
def test_an_order_is_placed_while_djangos_requests_hold_every_connection_of_the_pool_but_the_desks(processes, shop):
    """A pool of 4 connections: the desk's two clerks and its look-ups keep theirs from the
    worker's start, four restocks of a locked product take the fourth and queue for more. An
    order from a customer the worker has not seen yet (its token is looked up) is placed at
    once, on the desk's connections: it does not queue behind Django's requests for the pool (under a crowd of 300
    it did, for up to 4 s, and was refused at its deadline)."""
    processes.env_overrides.update(
        DATABASE_POOL_MIN="2", DATABASE_POOL_MAX="4", DATABASE_POOL_TIMEOUT="3", INTAKE_DESK_CONNECTIONS="2",
        THROTTLES_ENABLED="false",
    )  # fmt: skip
    web = processes.start_web()
    tokens, product = shop["tokens"], shop["product"]
    # Answered by Django after the desk's clerks connected (they asked the pool first, at the start).
    assert get(web, tokens["staff"], f"/api/products/{product}/")[0] == 200

    restocks: list[int] = []

    def restock() -> None:
        request = urllib.request.Request(
            f"{web}/api/products/{product}/restock/", data=b'{"quantity": 1}', method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Token {tokens['staff']}"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                restocks.append(response.status)
        except urllib.error.HTTPError as exc:
            restocks.append(exc.code)

    with another_connection() as locker:
        locker.execute("SELECT id FROM inventory_product WHERE id = %s FOR UPDATE", [product])
        held = [threading.Thread(target=restock) for _ in range(4)]  # as many as the pool has
        for thread in held:
            thread.start()
        wait_for_a_lock_wait(locker, "a restock to wait for the lock")
        started = time.monotonic()
        status, _, order = post(web, tokens["alice"], [(product, 1)])
        took = time.monotonic() - started
        locker.rollback()
    for thread in held:
        thread.join(timeout=20)

    assert status == 201, order
    assert took < 3, took  # not after the pool's 3 s wait: it never queued for the pool
    assert Order.objects.filter(customer=shop["alice"]).count() == 1
    assert len(restocks) == 4, restocks
    assert set(restocks) <= {200, 503}, restocks  # the pool's wait: answered, never hung


@pytest.mark.skipif(connection.vendor != "postgresql", reason="holds a table lock from another connection")
def test_an_order_whose_token_cannot_be_looked_up_in_time_is_refused_at_its_deadline(processes, shop):
    """The token table is locked (as a migration would), so the look-up of a customer the
    worker has not seen waits: the order is answered 503 busy with Retry-After at its deadline,
    not when the lock goes, and is never placed."""
    processes.env_overrides.update(THROTTLES_ENABLED="false", INTAKE_DEADLINE_S="2")
    web = processes.start_web()
    product = shop["product"]
    assert post(web, shop["tokens"]["bob"], [(product, 1)])[0] == 201  # the desk has connected

    with another_connection() as locker:
        locker.execute("LOCK TABLE authtoken_token IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        status, headers, body = post(web, shop["tokens"]["alice"], [(product, 2)])
        waited = time.monotonic() - started
        locker.rollback()

    assert status == 503, body
    assert body["code"] == "busy"
    assert headers["retry-after"]
    # Refused at its 2 s deadline: not at once (nothing refuses it sooner), and not at the
    # client's 20 s time-out, which is where an order whose look-up has no deadline ends up.
    assert 1.5 <= waited < 4, waited
    assert not Order.objects.filter(customer=shop["alice"]).exists()
