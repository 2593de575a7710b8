"""Fixtures of the operations tests."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from tests.factories import ProductFactory, UserFactory

APP_NAME = "eventshop-crowd-test"  # the web's libpq application name, to count its connections
WORKERS = 2


@pytest.fixture
def crowd_web(processes):
    """The Procfile's web with 2 workers, rate limits off so that every request reaches the
    database (the crowd is a few customers placing many orders)."""
    products = [ProductFactory(stock=1_000_000).pk for _ in range(20)]
    tokens = [Token.objects.get_or_create(user=UserFactory())[0].key for _ in range(30)]

    def start(**env: str) -> str:
        processes.env_overrides.update(
            PGAPPNAME=APP_NAME, THROTTLES_ENABLED="false", MAX_PENDING_ORDERS_PER_CUSTOMER="0", **env
        )
        return processes.start_web(workers=WORKERS)

    return start, tokens, products
