"""Bad order input: a 400 that says what is wrong, field by field, and nothing written at all
(no order, no item, no event for the relay)."""

from __future__ import annotations

import pytest

from orders.placing import MAX_LINES, MAX_QUANTITY
from tests.api.answers import field_errors
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def refused(api, order_rows):
    """POST a body to /api/orders/, check it is refused with 400 and writes nothing, return the
    error body."""

    def post(body: object) -> object:
        before = order_rows()
        response = api.post("/api/orders/", body, format="json")
        assert response.status_code == 400, response.content
        assert order_rows() == before
        return field_errors(response)

    return post


def test_order_with_no_items_is_400_and_creates_nothing(refused):
    assert refused({"items": []}) == {"items": ["This list may not be empty."]}


def test_order_without_items_is_400_and_creates_nothing(refused):
    assert refused({}) == {"items": ["This field is required."]}


def test_order_with_items_that_are_not_a_list_is_400_and_creates_nothing(refused):
    body = refused({"items": {"product_id": 1, "quantity": 1}})

    assert list(body) == ["items"]
    assert "Expected a list" in body["items"][0]


def test_order_with_more_than_the_maximum_lines_is_400_and_creates_nothing(refused):
    products = [ProductFactory() for _ in range(MAX_LINES + 1)]

    body = refused({"items": [{"product_id": p.pk, "quantity": 1} for p in products]})

    assert body == {"items": [f"Ensure this field has no more than {MAX_LINES} elements."]}


def test_order_with_exactly_the_maximum_lines_is_accepted(api):
    products = [ProductFactory() for _ in range(MAX_LINES)]

    response = api.post(
        "/api/orders/", {"items": [{"product_id": p.pk, "quantity": 1} for p in products]}, format="json"
    )

    assert response.status_code == 201
    assert len(response.json()["items"]) == MAX_LINES


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (0, "Ensure this value is greater than or equal to 1."),
        (-1, "Ensure this value is greater than or equal to 1."),
        (MAX_QUANTITY + 1, f"Ensure this value is less than or equal to {MAX_QUANTITY}."),
        ("2", "A valid integer is required."),
        (2.5, "A valid integer is required."),
        (2.0, "A valid integer is required."),
        (True, "A valid integer is required."),
        (None, "This field may not be null."),
        ([2], "A valid integer is required."),
    ],
    ids=["zero", "negative", "above-maximum", "string", "fraction", "float", "boolean", "null", "list"],
)
def test_order_with_a_quantity_that_is_not_an_integer_from_1_to_1000_is_400_and_creates_nothing(
    refused, quantity, message
):
    product = ProductFactory()

    assert refused({"items": [{"product_id": product.pk, "quantity": quantity}]}) == {
        "items": [{"quantity": [message]}]
    }


def test_order_with_quantity_1000_is_accepted(api):
    product = ProductFactory()

    response = api.post(
        "/api/orders/", {"items": [{"product_id": product.pk, "quantity": MAX_QUANTITY}]}, format="json"
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    "product_id",
    ["1", 1.5, True, None, {"id": 1}, 0],
    ids=["string", "fraction", "boolean", "null", "object", "zero"],
)
def test_order_with_a_product_id_that_is_not_a_positive_integer_is_400_and_creates_nothing(refused, product_id):
    body = refused({"items": [{"product_id": product_id, "quantity": 1}]})

    assert list(body) == ["items"]
    assert list(body["items"][0]) == ["product_id"]


def test_order_with_a_missing_quantity_is_400_and_creates_nothing(refused):
    product = ProductFactory()

    assert refused({"items": [{"product_id": product.pk}]}) == {"items": [{"quantity": ["This field is required."]}]}


def test_order_line_that_is_not_an_object_is_400_and_creates_nothing(refused):
    body = refused({"items": [3]})

    assert body == {"items": [{"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]}]}


def test_order_with_an_unknown_product_is_400_and_creates_nothing(refused):
    assert refused({"items": [{"product_id": 999_999, "quantity": 1}]}) == {
        "items": [{"product_id": ["Product 999999 does not exist."]}]
    }


def test_order_with_a_product_id_too_large_for_the_database_is_400_and_creates_nothing(refused):
    assert refused({"items": [{"product_id": 2**64, "quantity": 1}]}) == {
        "items": [{"product_id": ["Ensure this value is less than or equal to 9223372036854775807."]}]
    }


def test_order_with_a_64_bit_product_id_that_does_not_exist_is_400_not_a_crash(refused):
    assert refused({"items": [{"product_id": 2**31, "quantity": 1}]}) == {
        "items": [{"product_id": [f"Product {2**31} does not exist."]}]
    }


def test_order_with_a_product_missing_from_the_orders_catalog_is_400_and_creates_nothing(refused):
    product = ProductFactory(in_catalog=False)

    assert refused({"items": [{"product_id": product.pk, "quantity": 1}]}) == {
        "items": [{"product_id": [f"Product {product.pk} does not exist."]}]
    }


def test_order_with_an_inactive_product_is_400_and_creates_nothing(refused):
    retired = ProductFactory(active=False)

    assert refused({"items": [{"product_id": retired.pk, "quantity": 1}]}) == {
        "items": [{"product_id": [f"Product {retired.pk} is not available."]}]
    }


def test_order_with_a_bad_second_line_reports_it_at_its_position(refused):
    good = ProductFactory()

    body = refused({"items": [{"product_id": good.pk, "quantity": 1}, {"product_id": 999_999, "quantity": 1}]})

    assert body == {"items": [{}, {"product_id": ["Product 999999 does not exist."]}]}


def test_order_with_the_same_product_twice_is_400_and_creates_nothing(refused):
    product = ProductFactory()

    body = refused({"items": [{"product_id": product.pk, "quantity": 1}, {"product_id": product.pk, "quantity": 2}]})

    assert body == {"items": [{}, {"product_id": ["This product is already in the order; list each product once."]}]}


def test_order_with_malformed_json_is_400_and_creates_nothing(api, order_rows):
    before = order_rows()

    response = api.post("/api/orders/", b'{"items": [{"product_id": 1, "quantity": 2}', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert order_rows() == before


def test_order_body_that_is_a_list_is_400_and_creates_nothing(refused):
    product = ProductFactory()

    body = refused([{"product_id": product.pk, "quantity": 1}])

    assert body == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}


def test_order_body_that_is_a_string_is_400_and_creates_nothing(refused):
    body = refused("two keyboards please")

    assert list(body) == ["non_field_errors"]


@pytest.mark.parametrize(
    "body",
    [
        {"items": [{"product_id": 1, "quantity": 2}]},
        {"items": [{"product_id": 1, "quantity": 2}, {"product_id": 3, "quantity": 1000}], "note": "ignored"},
        {"items": [{"product_id": 1, "quantity": 0}]},
        {"items": [{"product_id": 1, "quantity": True}]},
        {"items": [{"product_id": "1", "quantity": 2}]},
        {"items": [{"product_id": 1, "quantity": 2}, {"product_id": 1, "quantity": 1}]},
        {"items": []},
        {"items": [{"product_id": 1}]},
        {"items": "nope"},
        ["not", "an", "object"],
        {"items": [{"product_id": 1, "quantity": 1}] * 101},
    ],
)
def test_the_fast_path_accepts_exactly_what_the_serializer_accepts(body):
    from orders.api.serializers import OrderCreateSerializer, parse_lines

    serializer = OrderCreateSerializer(data=body)
    fast = parse_lines(body)

    if serializer.is_valid():
        assert fast == serializer.lines()
    else:
        assert fast is None, "anything the serializer refuses goes to it, for its messages"
