"""seed_demo creates a superuser whose password is published in the README: fine for the
embedded SQLite database of `make run`, refused on PostgreSQL (what deployments run on) unless
forced."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from inventory.models import Product

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only: the database seed_demo refuses"
)
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only: seeding without --force")


def demo_admin_exists() -> bool:
    return get_user_model().objects.filter(username="admin", is_superuser=True).exists()


@on_postgresql
def test_seed_demo_refuses_a_postgresql_database_and_creates_nothing():
    with pytest.raises(CommandError) as refusal:
        call_command("seed_demo")

    assert str(refusal.value).startswith(
        "seed_demo refuses a PostgreSQL database: it creates the superuser admin with the published password"
    )
    assert not demo_admin_exists()
    assert not Product.objects.exists()


@on_postgresql
def test_seed_demo_with_force_seeds_a_postgresql_database():
    call_command("seed_demo", "--force")

    assert demo_admin_exists()
    assert Product.objects.count() == 6


@on_sqlite
def test_seed_demo_seeds_the_embedded_sqlite_database_without_force():
    call_command("seed_demo")

    assert demo_admin_exists()
    assert Product.objects.count() == 6
