"""The admin site: eventshop's titles, and sign-in limited like the API's token endpoint."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from config.throttling import login_blocked_for


class SiteAdmin(admin.AdminSite):
    site_header = "eventshop administration"
    site_title = "eventshop"
    site_url = "/ops/"  # "View site" leads to the operations page
    index_template = "admin/index_with_operations.html"  # the console's link heads the index

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Past the limit of failed sign-ins for this address or username, answer 429 with the
        sign-in page and a message, without checking the password."""
        if request.method == "POST":
            wait = login_blocked_for(request, request.POST.get("username", ""))
            if wait:
                messages.error(request, f"Too many sign-in attempts; try again in {wait} seconds.")
                context = {
                    **self.each_context(request),
                    "title": "Log in",
                    "app_path": request.get_full_path(),
                    "form": AuthenticationForm(request),
                    REDIRECT_FIELD_NAME: request.GET.get(REDIRECT_FIELD_NAME, ""),
                    **(extra_context or {}),
                }
                return TemplateResponse(
                    request, "admin/login.html", context, status=429, headers={"Retry-After": str(wait)}
                )
        return super().login(request, extra_context)
