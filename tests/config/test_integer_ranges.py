"""An integer too large for its column is an error (Django's DataError), never a wrapped number:
with server-side binding, psycopg's own dumpers stored 2**40 as 0."""

from __future__ import annotations

import pytest
from django.db import DataError, connection, transaction

from inventory.models import Product
from tests.factories import ProductFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's dumpers: PostgreSQL only"),
]


@pytest.mark.parametrize("value", [2**40, -(2**40), 2**31])
def test_a_value_past_an_integer_column_is_refused_and_nothing_changes(value):
    product = ProductFactory(stock=7)

    with pytest.raises(DataError, match="integer out of range"), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(stock=value)

    product.refresh_from_db()
    assert product.stock == 7


def test_values_within_the_column_are_written_as_they_are():
    product = ProductFactory(stock=7)
    Product.objects.filter(pk=product.pk).update(stock=2**31 - 1)
    product.refresh_from_db()
    assert product.stock == 2**31 - 1
