from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from eventbus.admin import ReadOnlyAdmin
from inventory import services
from inventory.models import Product, Reservation, StockAdjustment


class RestockForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=1_000_000)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock", "active", "updated_at"]
    list_filter = ["active"]
    search_fields = ["sku", "name"]
    actions = ["restock"]
    # Stock moves through reservations and restocks (the ledger), never by editing the figure.
    readonly_fields = ["stock", "revision", "created_at", "updated_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Product | None = None) -> list[str]:
        fields = list(self.readonly_fields)
        if obj is None:
            fields.remove("stock")
        return fields

    def save_model(self, request: HttpRequest, obj: Product, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            updated = services.product_update(
                product_id=obj.pk, name=data["name"], price=data["price"], active=data["active"]
            )
        else:
            updated = services.product_create(
                sku=data["sku"],
                name=data["name"],
                price=data["price"],
                stock=data.get("stock") or 0,
                active=data["active"],
            )
        obj.pk = updated.pk
        obj.refresh_from_db()

    @admin.action(description="Restock selected products")
    def restock(self, request: HttpRequest, queryset: QuerySet[Product]) -> HttpResponse | None:
        if "apply" in request.POST:
            form = RestockForm(request.POST)
            if form.is_valid():
                for product in queryset:
                    services.product_restock(product_id=product.pk, quantity=form.cleaned_data["quantity"])
                self.message_user(request, f"Restocked {queryset.count()} product(s).", messages.SUCCESS)
                return None
        else:
            form = RestockForm()
        return render(
            request,
            "admin/inventory/restock.html",
            {**self.admin_site.each_context(request), "form": form, "products": queryset, "title": "Restock"},
        )


# Reservations and stock adjustments are the ledger the stock figure is checked against
# (dashboard.invariants): rows are written by the services only, and none is removed by hand.


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ["order_id", "product", "quantity", "status", "created_at", "released_at"]
    list_filter = ["status"]
    search_fields = ["order_id", "product__sku"]
    list_select_related = ["product"]


@admin.register(StockAdjustment)
class StockAdjustmentAdmin(ReadOnlyAdmin):
    list_display = ["product", "delta", "reason", "created_at"]
    list_filter = ["reason"]
    search_fields = ["product__sku"]
    list_select_related = ["product"]
