"""factory-boy factories. Products are created through the inventory service (so the stock
ledger and the ProductChanged event exist) and, unless in_catalog=False, also applied to the
orders app's catalog copy the way its consumer would."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth import get_user_model

from inventory.models import Product
from inventory.services import product_create
from orders.services import catalog_product_apply


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"customer{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("secret-password")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Faker("word")
    price = Decimal("10.00")
    stock = 10
    active = True

    @classmethod
    def _create(cls, model_class: type[Product], *args: Any, in_catalog: bool = True, **kwargs: Any) -> Product:
        product = product_create(**kwargs)
        if in_catalog:
            catalog_product_apply(
                product_id=product.pk, sku=product.sku, name=product.name,
                price=product.price, active=product.active, revision=product.revision,
            )  # fmt: skip
        return product
