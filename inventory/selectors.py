"""Inventory reads."""

from __future__ import annotations

from django.db.models import QuerySet

from inventory.models import Product


def product_list(*, include_inactive: bool = True) -> QuerySet[Product]:
    products = Product.objects.all()
    return products if include_inactive else products.filter(active=True)
