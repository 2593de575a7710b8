"""The baseline's models (shop/models.py of the Celery baseline), under bench_peers_* tables."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    stock = models.IntegerField()

    class Meta:
        db_table = "bench_peers_product"
        constraints = [models.CheckConstraint(condition=Q(stock__gte=0), name="bench_peers_stock_non_negative")]

    def __str__(self) -> str:
        return self.sku


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        CONFIRMED = "CONFIRMED"
        REJECTED = "REJECTED"

    user_id = models.IntegerField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "bench_peers_order"

    def __str__(self) -> str:
        return f"order {self.pk} {self.status}"


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        db_table = "bench_peers_orderitem"

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id}"


class Notification(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "bench_peers_notification"

    def __str__(self) -> str:
        return f"{self.kind} {self.order_id}"


MODELS = (Product, Order, OrderItem, Notification)  # in creation order
