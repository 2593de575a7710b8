"""Rate limits: failed sign-ins, order placement, anonymous reads, and what happens to them when
Redis stalls. Counted in the real Redis, through the real cache and views."""

from __future__ import annotations

import logging
import time

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from config.throttling import breaker
from orders.models import Order
from tests.clients import token_client
from tests.concurrency import run_at_once
from tests.factories import ProductFactory, UserFactory
from tests.redisproxy import ReplyHoldingProxy

pytestmark = pytest.mark.django_db


def sign_in(username: str, password: str, ip: str = "203.0.113.7"):
    return APIClient().post("/api/auth/token/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content[:200]
    assert int(response["Retry-After"]) >= 1
    if response["Content-Type"].startswith("application/json"):
        assert response.json()["detail"]


# --- sign-in ----------------------------------------------------------------------------------------


def test_ten_wrong_passwords_block_the_address_even_for_the_right_one():
    UserFactory(username="alice")
    answers = [sign_in("alice", "wrong").status_code for _ in range(10)]

    blocked = sign_in("alice", "secret-password")

    assert answers == [400] * 10
    assert_throttled(blocked)
    assert blocked["Content-Type"] == "application/json"


def test_ten_wrong_passwords_from_an_attackers_address_do_not_lock_the_owner_out_from_theirs():
    UserFactory(username="alice")
    for _ in range(10):
        sign_in("alice", "wrong", ip="198.51.100.66")

    assert_throttled(sign_in("alice", "secret-password", ip="198.51.100.66"))
    assert sign_in("alice", "secret-password", ip="203.0.113.7").status_code == 200


def test_failures_on_one_username_from_many_addresses_block_that_username(settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login_failures_user": "30/hour"}
    UserFactory(username="alice")
    for i in range(10):
        for _ in range(3):
            sign_in("alice", "wrong", ip=f"198.51.100.{i}")

    assert_throttled(sign_in("alice", "secret-password", ip="198.51.100.200"))


def test_one_address_alone_cannot_reach_the_per_username_limit(settings):
    settings.THROTTLE_RATES = {
        **settings.THROTTLE_RATES, "login_failures": "100/min,5/hour", "login_failures_user": "6/hour"
    }  # fmt: skip
    UserFactory(username="alice")
    answers = [sign_in("alice", "wrong", ip="198.51.100.66").status_code for _ in range(10)]

    assert answers == [400] * 5 + [429] * 5
    assert sign_in("alice", "secret-password", ip="203.0.113.7").status_code == 200


def test_a_success_elsewhere_does_not_reset_an_address_counter(settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login_failures_address": "10/min"}
    UserFactory(username="alice")
    UserFactory(username="bob")
    for i in range(9):
        sign_in(f"nobody{i}", "wrong", ip="192.0.2.1")

    assert sign_in("bob", "secret-password", ip="192.0.2.2").status_code == 200
    assert sign_in("nobody", "wrong", ip="192.0.2.1").status_code == 400
    assert_throttled(sign_in("alice", "secret-password", ip="192.0.2.1"))
    assert sign_in("alice", "secret-password", ip="192.0.2.3").status_code == 200


def test_a_hundred_successful_sign_ins_from_one_address_in_a_minute_all_work():
    UserFactory(username="alice")

    answers = [sign_in("alice", "secret-password").status_code for _ in range(100)]

    assert answers == [200] * 100


def test_wrong_passwords_on_the_admin_login_are_limited_too():
    UserFactory(username="root", is_staff=True)
    client = APIClient()
    form = {"username": "root", "password": "wrong", "next": "/admin/"}
    answers = [
        client.post("/admin/login/?next=/admin/", form, format="multipart", REMOTE_ADDR="203.0.113.9").status_code
        for _ in range(10)
    ]

    blocked = client.post(
        "/admin/login/?next=/admin/",
        {**form, "password": "secret-password"},
        format="multipart",
        REMOTE_ADDR="203.0.113.9",
    )

    assert answers == [200] * 10  # the login page again, with its error
    assert_throttled(blocked)
    assert "Too many sign-in attempts" in blocked.content.decode()
    assert "_auth_user_id" not in client.session


def test_failed_sign_ins_on_the_admin_count_against_the_api_token_endpoint():
    UserFactory(username="root", is_staff=True)
    client = APIClient()
    for _ in range(10):
        client.post(
            "/admin/login/", {"username": "root", "password": "wrong"}, format="multipart", REMOTE_ADDR="203.0.113.10"
        )

    assert_throttled(sign_in("root", "secret-password", ip="203.0.113.10"))


# --- the API ------------------------------------------------------------------------------------


def test_placing_orders_past_the_rate_is_429_with_retry_after(api, other_api, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "orders": "3/min"}
    product = ProductFactory(stock=100)
    item = {"items": [{"product_id": product.pk, "quantity": 1}]}

    answers = [api.post("/api/orders/", item).status_code for _ in range(3)]
    refused = api.post("/api/orders/", item)

    assert answers == [201] * 3
    assert_throttled(refused)
    assert other_api.post("/api/orders/", item).status_code == 201, "another customer is not held up"
    assert api.get("/api/orders/").status_code == 200, "reading is not placing"


def test_anonymous_requests_are_limited_per_address(settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "anon": "5/min"}
    client = APIClient()

    answers = [client.get("/api/schema/", REMOTE_ADDR="203.0.113.20").status_code for _ in range(5)]
    refused = client.get("/api/schema/", REMOTE_ADDR="203.0.113.20")

    assert answers == [200] * 5
    assert_throttled(refused)
    assert client.get("/api/schema/", REMOTE_ADDR="203.0.113.21").status_code == 200


def test_a_forged_x_forwarded_for_does_not_escape_the_limit(settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "anon": "2/min"}
    client = APIClient()
    for i in range(2):
        client.get("/api/schema/", REMOTE_ADDR="203.0.113.30", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")

    assert_throttled(client.get("/api/schema/", REMOTE_ADDR="203.0.113.30", HTTP_X_FORWARDED_FOR="10.0.0.99"))


def test_behind_a_trusted_proxy_the_client_address_comes_from_x_forwarded_for(settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "anon": "2/min"}
    settings.NUM_PROXIES = 1
    client = APIClient()
    for _ in range(2):
        client.get("/api/schema/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.5")

    assert_throttled(client.get("/api/schema/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.5"))
    assert client.get("/api/schema/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.6").status_code == 200


def test_health_checks_are_never_throttled(settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "anon": "1/min"}
    client = APIClient()

    answers = {client.get("/healthz", REMOTE_ADDR="203.0.113.40").status_code for _ in range(5)}

    assert 429 not in answers


def test_counting_is_atomic_when_many_workers_count_at_once():
    cache = caches["default"]

    def hit() -> list[int]:
        return [cache.count([("atomic-test", 60)])[0][0] for _ in range(10)]

    seen = [n for counts in run_at_once([hit] * 20) for n in counts]  # type: ignore[union-attr]

    assert sorted(seen) == list(range(1, 201))


# --- customers' pending orders --------------------------------------------------------------------


def test_a_customer_past_the_pending_order_limit_gets_429_until_orders_settle(api, settings):
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 3
    product = ProductFactory(stock=100)
    item = {"items": [{"product_id": product.pk, "quantity": 1}]}
    placed = [api.post("/api/orders/", item).json()["id"] for _ in range(3)]

    refused = api.post("/api/orders/", item)
    Order.objects.filter(pk=placed[0]).update(status="confirmed")
    allowed = api.post("/api/orders/", item)

    assert_throttled(refused)
    assert refused.json()["code"] == "too_many_pending_orders"
    assert "3 orders waiting for confirmation" in refused.json()["detail"]
    assert allowed.status_code == 201


@pytest.mark.django_db(transaction=True)
def test_racing_placements_never_pass_the_pending_order_limit(customer, settings):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL (CI runs it)")
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 5
    settings.THROTTLES_ENABLED = False
    product = ProductFactory(stock=100)
    clients = [token_client(customer) for _ in range(12)]

    def place(client) -> int:
        return client.post("/api/orders/", {"items": [{"product_id": product.pk, "quantity": 1}]}).status_code

    answers = run_at_once([lambda c=c: place(c) for c in clients])

    assert sorted(answers) == [201] * 5 + [429] * 7
    assert Order.objects.filter(customer=customer, status="pending").count() == 5


# --- Redis stalls ---------------------------------------------------------------------------------


@pytest.fixture
def stalled_redis(settings, redis_server) -> ReplyHoldingProxy:
    """Redis behind a proxy that stops answering every command once `hold` is set: the cache
    and the publishing web process both talk to it."""
    from eventbus.redis.transport import reset_transport

    if not redis_server.startswith("redis://"):
        pytest.skip("the proxy speaks TCP; REDIS_URL is a Unix socket here (CI runs it against the Redis server)")
    port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    proxy = ReplyHoldingProxy(port, hold_all=True)
    shared_url, shared_caches = settings.REDIS_URL, settings.CACHES
    settings.REDIS_URL = proxy.url
    settings.CACHES = {a: {**c, "LOCATION": proxy.url} for a, c in shared_caches.items()}
    reset_transport()
    yield proxy
    proxy.close()
    settings.REDIS_URL, settings.CACHES = shared_url, shared_caches
    reset_transport()
    breaker.reset()


@pytest.mark.django_db(transaction=True)  # commits, so each order is also published on commit
def test_with_redis_stalled_orders_are_still_taken_promptly_and_the_outage_is_logged_once(
    stalled_redis, api, caplog, settings
):
    settings.MAX_PENDING_ORDERS_PER_CUSTOMER = 0  # no pipeline runs: every order stays pending
    product = ProductFactory(stock=1000)
    item = {"items": [{"product_id": product.pk, "quantity": 1}]}
    assert api.post("/api/orders/", item).status_code == 201  # connections made while Redis answers
    stalled_redis.hold.set()
    timings, answers = [], []

    with caplog.at_level(logging.WARNING, logger="config.throttling"):
        for _ in range(40):
            started = time.monotonic()
            answers.append(api.post("/api/orders/", item).status_code)
            timings.append(time.monotonic() - started)

    timings.sort()
    assert answers == [201] * 40
    assert timings[int(len(timings) * 0.99) - 1] < 1.0, f"p99 {timings[-1]:.3f}s"
    outage_lines = [r for r in caplog.records if "rate limits are off" in r.getMessage()]
    assert len(outage_lines) == 1


def test_with_redis_stalled_sign_in_fails_closed_while_the_api_fails_open(stalled_redis, api):
    UserFactory(username="alice")
    assert sign_in("alice", "secret-password").status_code == 200  # connections made while Redis answers
    stalled_redis.hold.set()

    refused = [sign_in("alice", "secret-password") for _ in range(3)]
    served = api.get("/api/products/")

    for response in refused:
        assert_throttled(response)
        assert response.json()["code"] == "throttled"
        assert response.json()["detail"].startswith("Sign-in is paused while its attempts cannot be counted")
    assert served.status_code == 200, "the other limits fail open"


def test_sign_in_works_again_once_redis_answers(stalled_redis):
    UserFactory(username="alice")
    stalled_redis.hold.set()
    assert_throttled(sign_in("alice", "secret-password"))

    stalled_redis.release()
    breaker.reset()  # the breaker's pause is over

    assert sign_in("alice", "secret-password").status_code == 200


def test_with_redis_stalled_the_admin_sign_in_fails_closed_too(stalled_redis):
    UserFactory(username="root", is_staff=True)
    stalled_redis.hold.set()
    client = APIClient()

    refused = client.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "secret-password", "next": "/admin/"},
        format="multipart", REMOTE_ADDR="203.0.113.9",
    )  # fmt: skip

    assert_throttled(refused)
    assert "_auth_user_id" not in client.session
