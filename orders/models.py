from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q


class Order(models.Model):
    """An order. Its status changes only through orders.services, along TRANSITIONS."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CONFIRMED = "confirmed"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    # target status -> the statuses it may be reached from
    TRANSITIONS: dict[str, tuple[str, ...]] = {
        Status.CONFIRMED: (Status.PENDING,),
        Status.REJECTED: (Status.PENDING,),
        Status.CANCELLED: (Status.PENDING, Status.CONFIRMED),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: order_customer_recent (customer, -created_at) serves every look-up by customer.
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    rejection_reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The client's Idempotency-Key, if it sent one (the order's id is derived from it and the
    # customer), and a hash of what it asked for, so a retry with another body is refused.
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    request_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="order_customer_recent"),
            models.Index(fields=["status"], name="order_status"),
            # Counting a customer's pending orders (MAX_PENDING_ORDERS_PER_CUSTOMER) reads only
            # the few rows still pending, however many orders the customer has.
            models.Index(fields=["customer"], condition=Q(status="pending"), name="order_customer_pending"),
        ]
        constraints = [models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative")]

    def __str__(self) -> str:
        return f"order {self.id} ({self.status})"

    @property
    def url(self) -> str:
        from orders.placing import order_url  # placing imports the models

        return order_url(self.id)

    @property
    def cancellable(self) -> bool:
        return self.status in self.TRANSITIONS[self.Status.CANCELLED]


class OrderItem(models.Model):
    # No index of its own: order_item_once_per_product (order, product_id) serves look-ups by order.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items", db_index=False)
    product_id = models.PositiveBigIntegerField()  # inventory's Product ids are 64-bit
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_item_quantity_positive"),
            models.UniqueConstraint(fields=["order", "product_id"], name="order_item_once_per_product"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} x{self.quantity}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class CatalogProduct(models.Model):
    """The orders app's own copy of the catalog (name, price, active), kept current by
    inventory's ProductChanged events. Placing an order reads only this table."""

    product_id = models.PositiveBigIntegerField(primary_key=True)
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    active = models.BooleanField()
    revision = models.PositiveIntegerField()

    class Meta:
        verbose_name = "catalog product"
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"
