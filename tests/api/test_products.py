"""The catalog: every signed-in user reads it, only staff change it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from config.errors import InvalidInput
from eventbus.models import OutboxEvent
from inventory.models import Product, StockAdjustment
from inventory.services import MAX_STOCK, product_create
from tests.api.answers import field_errors
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

PRODUCT_FIELDS = {"id", "sku", "name", "price", "stock", "active"}


def product_events(product: Product) -> list[str]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="product", aggregate_id=str(product.pk))
        .order_by("id")
        .values_list("event_type", flat=True)
    )


# --- reading ----------------------------------------------------------------------------------


def test_product_list_shows_every_product_with_exactly_the_public_fields(api):
    lamp = ProductFactory(sku="LAMP-1", name="Lamp", price=Decimal("12.50"), stock=3)
    ProductFactory(sku="RETIRED-1", active=False)

    response = api.get("/api/products/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [p["sku"] for p in body["results"]] == ["LAMP-1", "RETIRED-1"]
    assert body["results"][0] == {
        "id": lamp.pk, "sku": "LAMP-1", "name": "Lamp", "price": "12.50", "stock": 3, "active": True,
    }  # fmt: skip


def test_product_detail_has_exactly_the_public_fields(api):
    product = ProductFactory(sku="DESK-1", name="Desk", price=Decimal("199.00"), stock=7)

    response = api.get(f"/api/products/{product.pk}/")

    assert response.status_code == 200
    assert set(response.json()) == PRODUCT_FIELDS
    assert response.json() == {
        "id": product.pk,
        "sku": "DESK-1",
        "name": "Desk",
        "price": "199.00",
        "stock": 7,
        "active": True,
    }


def test_product_detail_of_an_unknown_product_is_404(api):
    assert api.get("/api/products/999999/").status_code == 404


@pytest.mark.parametrize("product_id", ["not-a-number", "-1", "99999999999999999999"])
def test_product_detail_with_an_impossible_id_is_404(api, product_id):
    assert api.get(f"/api/products/{product_id}/").status_code == 404


# --- staff writes -----------------------------------------------------------------------------


def test_staff_creates_a_product_with_its_initial_stock(staff_api):
    response = staff_api.post(
        "/api/products/", {"sku": "CHAIR-1", "name": "Chair", "price": "45.00", "stock": 6}, format="json"
    )

    assert response.status_code == 201
    product = Product.objects.get(sku="CHAIR-1")
    assert response.json() == {
        "id": product.pk,
        "sku": "CHAIR-1",
        "name": "Chair",
        "price": "45.00",
        "stock": 6,
        "active": True,
    }
    assert (product.name, product.price, product.stock, product.active) == ("Chair", Decimal("45.00"), 6, True)
    assert list(product.adjustments.values_list("delta", "reason")) == [(6, "initial")]
    assert product_events(product) == ["inventory.ProductChanged"]


def test_staff_patch_changes_only_the_fields_sent(staff_api):
    product = ProductFactory(sku="MUG-1", name="Mug", price=Decimal("5.00"), stock=4)

    response = staff_api.patch(f"/api/products/{product.pk}/", {"price": "6.50"}, format="json")

    assert response.status_code == 200
    assert response.json()["price"] == "6.50"
    product.refresh_from_db()
    assert (product.sku, product.name, product.price, product.stock) == ("MUG-1", "Mug", Decimal("6.50"), 4)
    assert product.revision == 2
    assert product_events(product) == ["inventory.ProductChanged", "inventory.ProductChanged"]


def test_staff_put_replaces_the_catalog_data_but_never_the_sku(staff_api):
    product = ProductFactory(sku="MUG-1", name="Mug", price=Decimal("5.00"), stock=4)

    response = staff_api.put(
        f"/api/products/{product.pk}/",
        {"sku": "OTHER-1", "name": "Big mug", "price": "7.00", "stock": 9, "active": False},
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {
        "id": product.pk,
        "sku": "MUG-1",
        "name": "Big mug",
        "price": "7.00",
        "stock": 9,
        "active": False,
    }
    product.refresh_from_db()
    assert (product.sku, product.name, product.price, product.stock, product.active) == (
        "MUG-1", "Big mug", Decimal("7.00"), 9, False,
    )  # fmt: skip
    assert list(product.adjustments.order_by("id").values_list("delta", "reason")) == [
        (4, "initial"), (5, "correction"),
    ]  # fmt: skip


def test_staff_restock_adds_to_the_stock_and_records_it_in_the_ledger(staff_api):
    product = ProductFactory(stock=2)

    response = staff_api.post(f"/api/products/{product.pk}/restock/", {"quantity": 8}, format="json")

    assert response.status_code == 200
    assert response.json()["stock"] == 10
    assert Product.objects.get(pk=product.pk).stock == 10
    assert list(product.adjustments.order_by("id").values_list("delta", "reason")) == [
        (2, "initial"), (8, "restock"),
    ]  # fmt: skip


@pytest.mark.parametrize("quantity", [0, -1, "5", 2.5, None])
def test_restock_with_a_quantity_that_is_not_a_positive_integer_is_400_and_changes_nothing(staff_api, quantity):
    product = ProductFactory(stock=2)

    response = staff_api.post(f"/api/products/{product.pk}/restock/", {"quantity": quantity}, format="json")

    errors = field_errors(response)
    assert list(errors) == ["quantity"]
    assert Product.objects.get(pk=product.pk).stock == 2
    assert StockAdjustment.objects.filter(product=product).count() == 1


def test_restock_that_would_pass_the_maximum_stock_is_400_and_changes_nothing(staff_api):
    product = ProductFactory(stock=MAX_STOCK - 5)

    response = staff_api.post(f"/api/products/{product.pk}/restock/", {"quantity": 6}, format="json")

    errors = field_errors(response)
    assert list(errors) == ["quantity"]
    assert Product.objects.get(pk=product.pk).stock == MAX_STOCK - 5


def test_two_creates_racing_for_one_sku_give_one_product_and_a_400_not_a_500():
    # The serializer's uniqueness check passed for both; the unique index decides.
    product_create(sku="RACE-1", name="First", price=Decimal("1.00"))

    with pytest.raises(InvalidInput) as refused:
        product_create(sku="RACE-1", name="Second", price=Decimal("1.00"))

    assert refused.value.errors == {"sku": ["A product with this SKU already exists; choose another SKU."]}
    assert list(Product.objects.filter(sku="RACE-1").values_list("name", flat=True)) == ["First"]


def test_restock_of_an_unknown_product_is_404(staff_api):
    assert staff_api.post("/api/products/999999/restock/", {"quantity": 1}, format="json").status_code == 404


# --- non-staff writes -------------------------------------------------------------------------


def test_customer_cannot_create_a_product(api):
    response = api.post(
        "/api/products/", {"sku": "CHAIR-1", "name": "Chair", "price": "45.00", "stock": 6}, format="json"
    )

    assert response.status_code == 403
    assert not Product.objects.filter(sku="CHAIR-1").exists()


def test_customer_cannot_patch_a_product(api):
    product = ProductFactory(price=Decimal("5.00"))

    response = api.patch(f"/api/products/{product.pk}/", {"price": "0.01"}, format="json")

    assert response.status_code == 403
    assert Product.objects.get(pk=product.pk).price == Decimal("5.00")


def test_customer_cannot_put_a_product(api):
    product = ProductFactory(name="Mug", price=Decimal("5.00"))

    response = api.put(f"/api/products/{product.pk}/", {"name": "Free mug", "price": "0.00"}, format="json")

    assert response.status_code == 403
    product.refresh_from_db()
    assert (product.name, product.price) == ("Mug", Decimal("5.00"))


def test_customer_cannot_restock_a_product(api):
    product = ProductFactory(stock=2)

    response = api.post(f"/api/products/{product.pk}/restock/", {"quantity": 8}, format="json")

    assert response.status_code == 403
    assert Product.objects.get(pk=product.pk).stock == 2
    assert StockAdjustment.objects.filter(product=product).count() == 1


def test_nobody_can_delete_a_product(staff_api):
    product = ProductFactory()

    assert staff_api.delete(f"/api/products/{product.pk}/").status_code == 405
    assert Product.objects.filter(pk=product.pk).exists()


# --- invalid product data ---------------------------------------------------------------------


def test_creating_a_product_with_a_duplicate_sku_is_400_with_a_sku_message(staff_api):
    ProductFactory(sku="CHAIR-1", name="Chair")

    response = staff_api.post("/api/products/", {"sku": "CHAIR-1", "name": "Other", "price": "1.00"}, format="json")

    errors = field_errors(response)
    assert list(errors) == ["sku"]
    assert errors["sku"] == ["A product with this SKU already exists; choose another SKU."]
    assert list(Product.objects.filter(sku="CHAIR-1").values_list("name", flat=True)) == ["Chair"]


def test_creating_a_product_with_negative_price_and_stock_is_400_per_field(staff_api):
    response = staff_api.post(
        "/api/products/", {"sku": "CHAIR-1", "name": "Chair", "price": "-1.00", "stock": -3}, format="json"
    )

    body = field_errors(response)
    assert set(body) == {"price", "stock"}
    assert "greater than or equal to 0" in body["price"][0]
    assert "greater than or equal to 0" in body["stock"][0]
    assert not Product.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_creating_a_product_without_the_required_fields_is_400_per_field(staff_api):
    response = staff_api.post("/api/products/", {}, format="json")

    errors = field_errors(response)
    assert set(errors) == {"sku", "name", "price"}
    assert not Product.objects.exists()


def test_put_without_the_required_fields_is_400_and_changes_nothing(staff_api):
    product = ProductFactory(name="Mug", price=Decimal("5.00"))

    response = staff_api.put(f"/api/products/{product.pk}/", {"name": "Big mug"}, format="json")

    errors = field_errors(response)
    assert errors == {"price": ["This field is required."]}
    assert Product.objects.get(pk=product.pk).name == "Mug"


def test_patching_a_negative_price_is_400_and_changes_nothing(staff_api):
    product = ProductFactory(price=Decimal("5.00"))

    response = staff_api.patch(f"/api/products/{product.pk}/", {"price": "-0.01"}, format="json")

    errors = field_errors(response)
    assert list(errors) == ["price"]
    assert Product.objects.get(pk=product.pk).price == Decimal("5.00")


def test_patching_a_negative_stock_is_400_and_changes_nothing(staff_api):
    product = ProductFactory(stock=4)

    response = staff_api.patch(f"/api/products/{product.pk}/", {"stock": -1}, format="json")

    errors = field_errors(response)
    assert list(errors) == ["stock"]
    assert Product.objects.get(pk=product.pk).stock == 4
