"""Orders reads."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

import bulk
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


class CatalogEntry(NamedTuple):
    """A product as the orders app knows it (its catalog copy), for placing an order."""

    product_id: int
    sku: str
    name: str
    price: Decimal
    active: bool


def catalog_select(product_ids: list[int]) -> bulk.Select:
    """The catalog entries for these ids: one prepared query on the placing hot path, to send
    with others in one round trip (bulk.pipelined), read into plain tuples (catalog_entries)."""
    return bulk.Select(CatalogProduct, CatalogEntry._fields, where={"product_id__in": product_ids})


def catalog_entries(sent: bulk.Select) -> dict[int, CatalogEntry]:
    """The answer to a catalog_select that was sent, by product id."""
    return {row[0]: CatalogEntry._make(row) for row in sent.rows()}


def catalog_orderable_ids(*, limit: int) -> list[int]:
    """Ids of up to `limit` products on sale in the orders app's catalog copy (active, by sku):
    the products an order placed now may name."""
    return list(CatalogProduct.objects.filter(active=True).order_by("sku").values_list("product_id", flat=True)[:limit])
