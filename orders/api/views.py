from __future__ import annotations

import re
import uuid
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import StrictQueryParams
from orders import placing, selectors, services
from orders.api.renderers import OrderBrowsableAPIRenderer
from orders.api.serializers import OrderCreateSerializer, OrderSerializer, parse_lines, placed_answer
from orders.models import Order

IDEMPOTENCY_KEY = "Idempotency-Key"
_PRINTABLE_KEY = re.compile(r"[\x20-\x7e]{1,255}")


def idempotency_key(request: Request) -> str:
    """The request's Idempotency-Key ("" if none), refused with a 400 unless it is 1 to 255
    printable ASCII characters."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return ""
    if not _PRINTABLE_KEY.fullmatch(key) or not key.strip():
        raise exceptions.ValidationError({IDEMPOTENCY_KEY: ["Use 1 to 255 printable ASCII characters."]})
    return key


class OrderViewSet(StrictQueryParams, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Orders. A customer sees and cancels their own; staff see all."""

    query_params = {"list": frozenset({"status"})}
    serializer_class = OrderSerializer
    throttle_scopes = {"create": "orders"}  # THROTTLE_RATES["orders"] per customer
    renderer_classes = [JSONRenderer, OrderBrowsableAPIRenderer]
    # A UUID, with or without its dashes: anything else is a 404 from the URL resolver, before
    # it can reach a query as a malformed value.
    lookup_value_regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def get_serializer_class(self) -> type[serializers.Serializer]:
        # Placing an order takes items and answers with the order: the browsable API's form and
        # OPTIONS on the list (whose only write is placing) describe what to send.
        placing = self.action == "create" or (self.action == "metadata" and not self.detail)
        return OrderCreateSerializer if placing else OrderSerializer

    def get_queryset(self) -> Any:
        status_filter = self.request.query_params.get("status") if self.action == "list" else None
        if status_filter is not None and status_filter not in Order.Status.values:
            raise exceptions.ValidationError({"status": [f"Choose one of: {', '.join(Order.Status.values)}."]})
        return selectors.order_list(user=self.request.user, status=status_filter)

    @extend_schema(parameters=[OpenApiParameter("status", enum=Order.Status.values)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=OrderCreateSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY,
                location=OpenApiParameter.HEADER,
                required=False,
                pattern=r"^[\x20-\x7e]{1,255}$",
                description=(
                    "Any 1 to 255 printable ASCII characters the client chooses for this order (a UUID, say). "
                    f"Sending the same key and body again within {placing.IDEMPOTENCY_WINDOW.total_seconds() / 3600:g} "
                    "hours answers with the order placed the "
                    "first time (header `Idempotent-Replayed: true`) instead of placing a second one; the same "
                    "key with another body is a 422. Keys are per customer."
                ),
            ),
        ],
        responses={
            201: OpenApiResponse(
                OrderSerializer,
                description=(
                    "Placed: the order is in the database (`status: pending`), committed before this answer left; "
                    "inventory confirms or rejects it within milliseconds (`GET` its `Location`). With an "
                    "Idempotency-Key used before for the same items, the order placed then, as it is now "
                    "(`Idempotent-Replayed: true`)."
                ),
            ),
            503: OpenApiResponse(
                description="Nothing was placed (the database did not answer, or the order waited too long): "
                "retry after `Retry-After` seconds, with the same Idempotency-Key."
            ),
            422: OpenApiResponse(description="This Idempotency-Key was used before with another body."),
        },
        examples=[
            OpenApiExample(
                "Two products",
                request_only=True,
                value={"items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}]},
            )
        ],
    )
    def create(self, request: Request) -> Response:
        """Place an order: 201 once it is committed `pending`; inventory then confirms or rejects it
        within milliseconds (`GET /api/orders/{id}/`). Send an `Idempotency-Key` to retry safely."""
        items = parse_lines(request.data)
        if items is None:
            serializer = self.get_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            items = serializer.lines()
        order = placing.order_place(customer=request.user, items=items, idempotency_key=idempotency_key(request))
        code, body, headers = placed_answer(order)
        return Response(body, status=code, headers=headers)

    @extend_schema(
        request=None,
        responses={
            200: OrderSerializer,
            409: OpenApiResponse(description="The order is rejected or already cancelled."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a pending or confirmed order: 409 if it is rejected or already cancelled."""
        order_id = uuid.UUID(pk)
        services.order_cancel(order_id=order_id, customer=None if request.user.is_staff else request.user)
        return Response(OrderSerializer.render(selectors.order_get(user=request.user, order_id=order_id)))
