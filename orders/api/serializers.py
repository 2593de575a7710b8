from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from config.api import StrictIntegerField
from orders.models import Order, OrderItem
from orders.services import MAX_LINES, MAX_QUANTITY


class OrderLinesSerializer(serializers.ListSerializer):
    """Order lines whose errors have the shape orders.services uses for the same rules, so a
    client reads one shape whichever layer refused the order: line errors by position, `{}` for
    a good line (`{"items": [{}, {"quantity": [...]}]}`), where DRF 3.18 keys them by index in
    a dict; and messages about the list as a whole as a plain list
    (`{"items": ["This list may not be empty."]}`), where DRF wraps them in `non_field_errors`."""

    def to_internal_value(self, data: Any) -> list[dict[str, int]]:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            if set(exc.detail) == {api_settings.NON_FIELD_ERRORS_KEY}:
                raise serializers.ValidationError(exc.detail[api_settings.NON_FIELD_ERRORS_KEY]) from exc
            lines = [exc.detail.get(index, {}) for index in range(len(data))]
            raise serializers.ValidationError(lines) from exc


# Product ids are 64-bit: a larger number is no product, and would not even fit the query.
MAX_PRODUCT_ID = 2**63 - 1


def well_formed_lines(data: Any) -> list[tuple[int, int]] | None:
    """The (product_id, quantity) lines of a body OrderCreateSerializer would accept as it is,
    or None: then the serializer runs and explains, field by field, what is wrong. The hot path
    of the API skips building a serializer tree for every valid order."""
    if type(data) is not dict:
        return None
    items = data.get("items")
    if type(items) is not list or not 1 <= len(items) <= MAX_LINES:
        return None
    lines: list[tuple[int, int]] = []
    seen: set[int] = set()
    for item in items:
        if type(item) is not dict:
            return None
        product_id, quantity = item.get("product_id"), item.get("quantity")
        if type(product_id) is not int or type(quantity) is not int:  # not bool, not str
            return None
        if not (1 <= product_id <= MAX_PRODUCT_ID and 1 <= quantity <= MAX_QUANTITY) or product_id in seen:
            return None
        seen.add(product_id)
        lines.append((product_id, quantity))
    return lines


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_PRODUCT_ID, "example": 1})
class ProductIdField(StrictIntegerField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_PRODUCT_ID, **kwargs)


class OrderLineInSerializer(serializers.Serializer):
    product_id = ProductIdField()
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)

    class Meta:
        list_serializer_class = OrderLinesSerializer


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


_money = serializers.DecimalField(max_digits=14, decimal_places=2)
_moment = serializers.DateTimeField()


def _when(value: Any) -> str | None:
    return None if value is None else _moment.to_representation(value)


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

    def to_representation(self, order: Order) -> dict[str, Any]:
        """The declared fields, formatted by the same DRF fields, without building a serializer
        tree per order: this is on the API's hottest path (every placed order answers with it)."""
        items = getattr(order, "placed_items", None)
        return {
            "id": str(order.id),
            "status": order.status,
            "customer_id": order.customer_id,
            "items": [
                {
                    "product_id": i.product_id,
                    "sku": i.sku,
                    "name": i.name,
                    "quantity": i.quantity,
                    "unit_price": _money.to_representation(i.unit_price),
                    "line_total": _money.to_representation(i.unit_price * i.quantity),
                }
                for i in (items if items is not None else order.items.all())
            ],
            "total": _money.to_representation(order.total),
            "rejection_reason": order.rejection_reason,
            "created_at": _when(order.created_at),
            "updated_at": _when(order.updated_at),
            "confirmed_at": _when(order.confirmed_at),
            "rejected_at": _when(order.rejected_at),
            "cancelled_at": _when(order.cancelled_at),
        }
