from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import IsStaffOrReadOnly, StrictQueryParams
from inventory import selectors, services
from inventory.api.serializers import ProductSerializer, ProductUpdateSerializer, RestockSerializer


class ProductViewSet(
    StrictQueryParams,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """The catalog with live stock. Everyone signed in may read; staff create, update, restock."""

    permission_classes = [IsStaffOrReadOnly]
    serializer_class = ProductSerializer

    def get_queryset(self) -> Any:
        return selectors.product_list()

    def create(self, request: Request) -> Response:
        serializer = ProductSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.product_create(**serializer.validated_data)
        return Response(ProductSerializer(product).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProductUpdateSerializer, responses=ProductSerializer)
    def update(self, request: Request, pk: str | None = None, partial: bool = False) -> Response:
        product = self.get_object()
        serializer = ProductUpdateSerializer(product, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        product = services.product_update(product_id=product.pk, **serializer.validated_data)
        return Response(ProductSerializer(product).data)

    @extend_schema(request=ProductUpdateSerializer, responses=ProductSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(request=RestockSerializer, responses=ProductSerializer)
    @action(detail=True, methods=["post"])
    def restock(self, request: Request, pk: str | None = None) -> Response:
        """Add stock to a product (staff only)."""
        product = self.get_object()
        serializer = RestockSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.product_restock(product_id=product.pk, quantity=serializer.validated_data["quantity"])
        return Response(ProductSerializer(product).data)
