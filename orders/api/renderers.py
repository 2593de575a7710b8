"""The browsable API of orders, shaped for a customer in a browser: place an order from a
pre-filled JSON body, open the order placed, cancel it with a button on its page."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django import forms
from django.urls import reverse
from django.utils.html import format_html
from rest_framework.request import Request
from rest_framework.views import APIView

from config.rest import BrowsableAPIRenderer
from orders import selectors
from orders.models import Order

# Lines in the example body: enough to show that an order is a list, few enough to read at once.
EXAMPLE_LINES = 2


def order_example_body() -> dict[str, Any]:
    """A body POST /api/orders/ accepts as it is: one of each of the first products on sale.
    With nothing on sale, the empty order, which the API refuses saying why."""
    return {"items": [{"product_id": pk, "quantity": 1} for pk in selectors.catalog_orderable_ids(limit=EXAMPLE_LINES)]}


class OrderBrowsableAPIRenderer(BrowsableAPIRenderer):
    template = "orders/browsable_api.html"

    def get_raw_data_form(self, data: Any, view: APIView, method: str, request: Request) -> forms.Form | None:
        form = super().get_raw_data_form(data, view, method, request)
        if form is None or method != "POST":
            return form
        if getattr(view, "detail", False):
            # The only POST on an order is cancel, which takes no body: the button does it.
            return None
        example = json.dumps(order_example_body(), indent=4)
        form.fields["_content"].initial = example
        form.fields["_content"].widget.attrs["rows"] = example.count("\n") + 2  # the whole example in view
        form.fields["_content"].help_text = format_html(
            'One line per product: its <a href="{}">product id</a> and the quantity. Edit the example and POST it.',
            reverse("product-list"),
        )
        return form

    def get_context(self, data: Any, accepted_media_type: str, renderer_context: Mapping[str, Any]) -> dict[str, Any]:
        context = super().get_context(data, accepted_media_type, renderer_context)
        view = renderer_context["view"]
        # DRF links each extra action, and a link is a GET: cancel would open on a 405 page.
        context["extra_actions"] = None
        results = data.get("results") if isinstance(data, Mapping) else None
        if isinstance(results, list):  # the order list: each order's page, one click away
            context["order_links"] = [
                (o["id"], o["status"], o["total"], o["url"]) for o in results if isinstance(o, Mapping) and o.get("url")
            ]
        order_id, status = (data.get("id"), data.get("status")) if isinstance(data, Mapping) else (None, None)
        if order_id and status:
            action = getattr(view, "action", None)
            if action == "retrieve":
                # The model's own rule, asked of the status this page shows.
                if Order(status=status).cancellable:
                    context["cancel_url"] = reverse("order-cancel", kwargs={"pk": order_id})
            else:
                # The page of an order just placed or cancelled leads to the order's own page.
                context["order_url"] = reverse("order-detail", kwargs={"pk": order_id})
        return context
