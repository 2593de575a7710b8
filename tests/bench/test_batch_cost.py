"""`python -m bench.batch_cost`: the consumer's cost per batch size (docs/scaling.md). The test
runs it small and checks that it measured what it says, every message reserved once per batch
size; never a speed."""

from __future__ import annotations

import pytest

from bench.batch_cost import main
from inventory.models import Product, Reservation

pytestmark = pytest.mark.django_db(transaction=True)


def test_batch_cost_reserves_every_message_once_per_batch_size_and_reports_each():
    out = main(12, (1, 4))

    assert out["messages"] == 12
    assert set(out["batches"]) == {1, 4}
    for figures in out["batches"].values():
        assert figures["consumer_cpu_ms_per_message"] > 0
        assert figures["wall_ms_per_message"] > 0
    assert Reservation.objects.count() == 24  # 12 orders for each batch size, each reserved once
    (product,) = Product.objects.filter(sku__startswith="batch-")
    assert product.stock == 10**9 - 24
