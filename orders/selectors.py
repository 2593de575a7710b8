"""Orders reads."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import QuerySet

from orders.models import CatalogProduct, Order


def order_list(*, user: AbstractBaseUser, status: str | None = None) -> QuerySet[Order]:
    """The user's own orders, newest first; staff see everyone's."""
    orders = Order.objects.prefetch_related("items")
    if not user.is_staff:
        orders = orders.filter(customer=user)
    if status:
        orders = orders.filter(status=status)
    return orders


def order_get(*, user: AbstractBaseUser, order_id: uuid.UUID) -> Order | None:
    return order_list(user=user).filter(pk=order_id).first()


def catalog_products(product_ids: list[int]) -> dict[int, CatalogProduct]:
    """The catalog entries for these ids, by id: one prepared query on the placing hot path."""
    if not product_ids:
        return {}
    table = connection.ops.quote_name(CatalogProduct._meta.db_table)
    columns = "product_id, sku, name, price, active, revision"
    if connection.vendor == "postgresql":
        sql, params = f"SELECT {columns} FROM {table} WHERE product_id = ANY(%s::bigint[])", [product_ids]
    else:
        sql, params = (
            f"SELECT {columns} FROM {table} WHERE product_id IN ({', '.join(['%s'] * len(product_ids))})",
            product_ids,
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    price = CatalogProduct._meta.get_field("price")
    return {
        row[0]: CatalogProduct(
            product_id=row[0],
            sku=row[1],
            name=row[2],
            price=price.to_python(row[3]),
            active=bool(row[4]),
            revision=row[5],
        )
        for row in rows
    }
