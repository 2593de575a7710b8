"""Orders reads."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
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


def catalog_product_list() -> QuerySet[CatalogProduct]:
    return CatalogProduct.objects.all()
