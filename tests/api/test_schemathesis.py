"""The API fuzzed against its own OpenAPI schema: schemathesis, with all of its checks, against
the real web process (gunicorn as the Procfile runs it) signed in as a customer and as staff.
Zero server errors, zero answers the schema does not describe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from orders.services import order_place
from tests.factories import ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES_PER_OPERATION = 20
# Schemathesis shares its time budget among the operations and fills it: the run takes this long
# whatever the examples per operation (90 s took 90 s at 20 and at 30).
SECONDS_PER_ROLE = 60
STAFF_ONLY_OPERATIONS = "^products_(create|update|partial_update|restock_create)$"


@pytest.mark.parametrize("role", ["customer", "staff"])
def test_the_api_answers_fuzzed_requests_as_its_schema_says(processes, role, tmp_path):
    customer, staff = UserFactory(), StaffFactory()
    products = [ProductFactory(stock=1000) for _ in range(3)]
    order_place(customer=customer, items=[(products[0].pk, 1)])
    token = Token.objects.create(user=customer if role == "customer" else staff).key
    # The fuzzer's requests should reach the handlers, not the rate limits (tests of their own).
    processes.env_overrides.update(
        THROTTLE_WRITES="100000/min", THROTTLE_ORDERS="100000/min", THROTTLE_ANON="100000/min",
        THROTTLE_LOGIN_FAILURES="100000/min", THROTTLE_LOGIN_FAILURES_ADDRESS="100000/min",
        THROTTLE_LOGIN_FAILURES_USER="100000/min", THROTTLE_LOGIN="100000/min",
        MAX_PENDING_ORDERS_PER_CUSTOMER="0", DEBUG="false",
    )  # fmt: skip
    web = processes.start_web(threads=8)
    # A customer's product writes are 403 whatever the body (tests/api/test_products.py says so
    # for each): fuzzing their bodies as a customer would only spend a quarter of the run.
    staff_only = ["--exclude-operation-id-regex", STAFF_ONLY_OPERATIONS] if role == "customer" else []

    # From tmp_path: schemathesis keeps a cache of what earlier runs found in .schemathesis/ of its
    # working directory and replays it; every run here starts from the seed alone.
    result = subprocess.run(
        [
            str(SCHEMATHESIS), "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
            "run", f"{web}/api/schema/",
            "--checks", "all",
            "--header", f"Authorization: Token {token}",
            "--max-examples", str(EXAMPLES_PER_OPERATION),
            "--seed", "20261130",
            "--workers", "1",
            "--max-time", str(SECONDS_PER_ROLE),
            "--request-timeout", "10",
            "--no-color",
            *staff_only,
            "--report", "junit", "--report-dir", str(tmp_path / "report"),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
