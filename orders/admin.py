from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.errors import DomainError
from eventbus.admin import ReadOnlyAdmin
from orders import services
from orders.models import CatalogProduct, Order, OrderItem


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    fields = ["product_id", "sku", "name", "quantity", "unit_price"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    """Shown, never edited nor deleted: every field is the services' (the customer's request, its
    idempotency key and hash, the status its events move). Cancelling is the action."""

    list_display = ["id", "customer", "status", "total", "created_at", "updated_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["id", "customer__username", "customer__email"]
    date_hierarchy = "created_at"
    list_select_related = ["customer"]
    inlines = [OrderItemInline]
    actions = ["cancel_orders"]
    readonly_fields = [
        "id", "customer", "status", "total", "rejection_reason", "idempotency_key", "request_hash",
        "created_at", "updated_at", "confirmed_at", "rejected_at", "cancelled_at",
    ]  # fmt: skip

    @admin.action(description="Cancel selected orders")
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        done, refused = 0, []
        for order in queryset:
            try:
                services.order_cancel(order_id=order.pk)
                done += 1
            except DomainError as exc:
                refused.append(f"{str(order.pk)[:8]}: {exc}")
        if done:
            self.message_user(request, f"Cancelled {done} order(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)


@admin.register(CatalogProduct)
class CatalogProductAdmin(ReadOnlyAdmin):
    """Read-only: kept current by inventory's ProductChanged events."""

    list_display = ["product_id", "sku", "name", "price", "active", "revision"]
    list_filter = ["active"]
    search_fields = ["sku", "name"]
