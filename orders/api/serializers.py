"""What the orders API reads and writes.

Placing an order: the serializer checks types only (each line an object with integer
`product_id` and `quantity`); the rules the lines follow (how many, which quantities, each
product once) live in orders.placing.order_lines_errors and are only documented here, from
its constants, for the schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from config.api import RenderedSerializer, StrictIntegerField
from orders.models import Order, OrderItem
from orders.placing import MAX_LINES, MAX_PRODUCT_ID, MAX_QUANTITY, PlacedOrder


def parse_lines(data: Any) -> list[tuple[int, int]] | None:
    """The (product_id, quantity) lines of a body of the right shape, or None: then
    OrderCreateSerializer runs and says, field by field, what is wrong. The hot path of the API
    skips building a serializer tree for every order."""
    if type(data) is not dict:
        return None
    items = data.get("items")
    if type(items) is not list:
        return None
    lines: list[tuple[int, int]] = []
    for item in items:
        if type(item) is not dict:
            return None
        product_id, quantity = item.get("product_id"), item.get("quantity")
        if type(product_id) is not int or type(quantity) is not int:  # not bool, not str
            return None
        lines.append((product_id, quantity))
    return lines


class OrderLinesSerializer(serializers.ListSerializer):
    """Order lines whose errors have the shape orders.services gives its own: line errors by
    position, `{}` for a good line (`{"items": [{}, {"quantity": [...]}]}`), where DRF 3.18 keys
    them by index in a dict; and messages about the list as a whole as a plain list, where DRF
    wraps them in `non_field_errors`."""

    # For the schema (config.openapi): what order_lines_errors allows.
    min_items, max_items = 1, MAX_LINES

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


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_PRODUCT_ID, "example": 1})
class ProductIdField(StrictIntegerField):
    pass


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY, "example": 2})
class QuantityField(StrictIntegerField):
    pass


class OrderLineInSerializer(serializers.Serializer):
    product_id = ProductIdField()
    quantity = QuantityField()

    class Meta:
        list_serializer_class = OrderLinesSerializer


class OrderCreateSerializer(serializers.Serializer):
    items = OrderLineInSerializer(many=True)

    def lines(self) -> list[tuple[int, int]]:
        return [(i["product_id"], i["quantity"]) for i in self.validated_data["items"]]


class OrderItemSerializer(RenderedSerializer, serializers.ModelSerializer):
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)

    class Meta:
        model = OrderItem
        fields = ["product_id", "sku", "name", "quantity", "unit_price", "line_total"]
        read_only_fields = fields


class OrderSerializer(RenderedSerializer, serializers.ModelSerializer):
    """An order as the API shows it, the one representation of 201 and GET: a model instance,
    or what placing one answers with (orders.placing.PlacedOrder, which has the same attributes)."""

    items = OrderItemSerializer(many=True, read_only=True)
    customer_id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=Order.Status.values, read_only=True)
    url = serializers.CharField(read_only=True, help_text="Where this order is (`GET` it to follow it).")

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
            "url",
        ]
        read_only_fields = fields


def placed_answer(order: PlacedOrder) -> tuple[int, dict[str, Any], dict[str, str]]:
    """What placing an order answers, as (status, body, headers): 201, the order as GET shows
    it, its Location, and whether it is a replay. The one answer of the API's view and of the
    web's order desk (orders.desk)."""
    headers = {"Location": order.url}
    if order.replayed:
        headers["Idempotent-Replayed"] = "true"
    return 201, OrderSerializer.render(order), headers
