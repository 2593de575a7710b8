from __future__ import annotations

from django.db import models
from django.db.models import Q


class Product(models.Model):
    """A product and its stock. Stock only moves through inventory.services: conditional
    updates in the database, so it can never go below zero whatever the concurrency."""

    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    stock = models.IntegerField(default=0)
    active = models.BooleanField(default=True)
    # Bumped on every catalog change, so consumers of ProductChanged can drop stale updates.
    revision = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=Q(stock__gte=0), name="product_stock_not_negative"),
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Reservation(models.Model):
    """Stock held for one order line. `released` rows without a prior reservation are
    tombstones left by a cancellation that overtook its order, so a late OrderPlaced reserves
    nothing."""

    class Status(models.TextChoices):
        RESERVED = "reserved"
        RELEASED = "released"

    order_id = models.UUIDField()
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RESERVED)
    created_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order_id", "product"], name="reservation_once_per_order_product"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="reservation_quantity_positive"),
        ]
        # reservation_once_per_order_product (order_id, product) serves look-ups by order.

    def __str__(self) -> str:
        return f"{self.order_id} {self.product_id} x{self.quantity} ({self.status})"


class StockAdjustment(models.Model):
    """The ledger of stock entering the system (initial stock, restocks, corrections), so
    `check_invariants` can prove stock + active reservations == everything ever added."""

    class Reason(models.TextChoices):
        INITIAL = "initial"
        RESTOCK = "restock"
        CORRECTION = "correction"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="adjustments")
    delta = models.IntegerField()
    reason = models.CharField(max_length=12, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.product_id} {self.delta:+d} ({self.reason})"
