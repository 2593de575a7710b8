from __future__ import annotations

from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from config.api import PriceField, StrictBooleanField, StrictCharField, StrictIntegerField
from inventory.models import Product
from inventory.services import MAX_STOCK, SKU_TAKEN


class ProductSerializer(serializers.ModelSerializer):
    sku = StrictCharField(
        max_length=64, validators=[UniqueValidator(queryset=Product.objects.all(), message=SKU_TAKEN)]
    )
    name = StrictCharField(max_length=200)
    price = PriceField()
    stock = StrictIntegerField(min_value=0, max_value=MAX_STOCK, required=False, default=0)
    active = StrictBooleanField(required=False, default=True)

    class Meta:
        model = Product
        fields = ["id", "sku", "name", "price", "stock", "active"]


class ProductUpdateSerializer(ProductSerializer):
    """sku is the product's identity: fixed once created."""

    sku = serializers.CharField(read_only=True)
    stock = StrictIntegerField(min_value=0, max_value=MAX_STOCK, required=False)
    active = StrictBooleanField(required=False)


class RestockSerializer(serializers.Serializer):
    quantity = StrictIntegerField(min_value=1, max_value=1_000_000)
