"""The API's front door (GET /api/): what the API is for and where to go next, for a program
(the JSON links) and for a person in the browsable API (the description, with links)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from rest_framework import routers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse as absolute_reverse

DESCRIPTION = (
    "The shop's API: browse the catalog, place orders and cancel them, and read the e-mails sent "
    "about them. Inventory confirms or rejects each order a few milliseconds after it is placed. "
    "Sign in here with your session, or send `Authorization: Token <key>` (POST /api/auth/token/ "
    "with your username and password gives the key)."
)


class ShopAPIRootView(routers.APIRootView):
    def get_view_name(self) -> str:
        return "eventshop API"

    def get_view_description(self, html: bool = False) -> str | SafeString:
        if not html:
            return DESCRIPTION
        links = [(reverse("api-docs"), "API documentation (Swagger UI)"), (reverse("schema"), "OpenAPI schema")]
        if self.request is not None and self.request.user.is_staff:
            links += [(reverse("admin:index"), "Admin"), (reverse("dashboard:overview"), "Operations dashboard")]
        return format_html(
            "<p>{}</p><p>{}</p>",
            DESCRIPTION,
            format_html_join(" · ", '<a href="{}">{}</a>', links),
        )

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        # A client that starts here also finds what describes the resources.
        response.data["docs"] = absolute_reverse("api-docs", request=request)
        response.data["schema"] = absolute_reverse("schema", request=request)
        return response
