from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import StrictIntegerField
from orders.models import Order, OrderItem
from orders.services import MAX_LINES, MAX_QUANTITY


class OrderLineInSerializer(serializers.Serializer):
    product_id = StrictIntegerField(min_value=1)
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)


class OrderCreateSerializer(serializers.Serializer):
    items = OrderLineInSerializer(many=True, allow_empty=False, max_length=MAX_LINES)

    def validate_items(self, items: list[dict[str, int]]) -> list[dict[str, int]]:
        seen: set[int] = set()
        errors: list[dict[str, list[str]]] = []
        for item in items:
            duplicate = item["product_id"] in seen
            seen.add(item["product_id"])
            errors.append(
                {"product_id": ["This product is already in the order; list each product once."]} if duplicate else {}
            )
        if any(errors):
            raise serializers.ValidationError(errors)
        return items


class OrderItemSerializer(serializers.ModelSerializer):
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)

    class Meta:
        model = OrderItem
        fields = ["product_id", "sku", "name", "quantity", "unit_price", "line_total"]


class OrderSerializer(serializers.ModelSerializer):
    items = serializers.SerializerMethodField()
    customer_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "status",
            "customer_id",
            "items",
            "total",
            "rejection_reason",
            "created_at",
            "updated_at",
            "confirmed_at",
            "rejected_at",
            "cancelled_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OrderItemSerializer(many=True))
    def get_items(self, order: Order) -> list[dict[str, Any]]:
        items = getattr(order, "placed_items", None)
        return OrderItemSerializer(items if items is not None else order.items.all(), many=True).data
