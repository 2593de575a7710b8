"""Every page a person opens, opened by a signed-in customer and by staff: each answers 200,
or sends a customer to sign in where the page is for staff; none answers 500.

The pages are found, not listed: every GET route of the URL conf (the browsable API's lists and
details, the docs, /ops/, ...) and every admin page of every model in the admin's registry, so
a page added later is opened without editing this test. A route whose arguments this test
cannot fill fails it, saying so."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.views.generic import RedirectView

pytestmark = pytest.mark.django_db(transaction=True)

# What a browser sends when a person opens a page.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Pages outside the admin's URLs that are for staff only: a customer is sent to sign in.
STAFF_ONLY = {"dashboard:overview"}
SIGN_IN = "302 to the admin's sign-in page"
# The operations console's JSON, for its script: a customer gets a JSON 403, not a sign-in page.
STAFF_ONLY_JSON = {"dashboard:state", "dashboard:invariants"}
# Endpoints for machines, not people: a person's session without the machine's credentials (the
# Prometheus bearer token) is refused.
FOR_MACHINES = {"metrics": 403}


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name"; empty for a route without a name
    pattern: str  # the route as the URL conf spells it: the url itself for a path() without arguments
    arguments: tuple[str, ...]
    redirect: int | None  # the status of a RedirectView's answer


def url_conf_routes(patterns: list[URLPattern | URLResolver], namespace: str = "", prefix: str = "") -> Iterator[Route]:
    """The named routes of the URL conf that answer GET, outside the admin (its pages come from
    its registry) and without DRF's format-suffix twins (the same page as JSON)."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            if inner != "admin":
                yield from url_conf_routes(entry.url_patterns, inner, prefix + str(entry.pattern))
            continue
        arguments = tuple(entry.pattern.regex.groupindex)
        if "format" in arguments or not answers_get(entry):
            continue
        view_class = getattr(entry.callback, "view_class", None)
        redirect = None
        if view_class is not None and issubclass(view_class, RedirectView):
            redirect = 301 if entry.callback.view_initkwargs.get("permanent") else 302
        yield Route(
            name=":".join(filter(None, [namespace, entry.name])) if entry.name else "",
            pattern=prefix + str(entry.pattern),
            arguments=arguments,
            redirect=redirect,
        )


def answers_get(entry: URLPattern) -> bool:
    actions = getattr(entry.callback, "actions", None)  # a DRF viewset's routes
    if actions is not None:
        return "get" in actions
    view_class = getattr(entry.callback, "view_class", None)
    if view_class is not None:
        return "get" in view_class.http_method_names and hasattr(view_class, "get")
    return True  # a function view


ROUTES = sorted(url_conf_routes(get_resolver().url_patterns), key=lambda route: route.name)


def detail_argument(client: Client, route: Route) -> dict[str, str]:
    """The pk of the first object the list beside this detail route shows the client."""
    cannot = f"{route.pattern}: this test cannot fill the arguments {route.arguments}; teach detail_argument()"
    assert route.arguments == ("pk",), cannot
    assert route.name.endswith("-detail"), cannot
    listing = client.get(reverse(route.name.removesuffix("-detail") + "-list"), HTTP_ACCEPT="application/json")
    assert listing.status_code == 200, listing.content
    results = listing.json()["results"]
    assert results, f"{route.pattern}: the shop fixture made nothing this user may see here"
    return {"pk": str(results[0]["id"])}


Expected = int | str  # a status, or SIGN_IN


def site_pages(client: Client, user: AbstractBaseUser) -> Iterator[tuple[str, Expected]]:
    """Every (url, status a page should answer this user with) outside the admin."""
    for route in ROUTES:
        if route.name:
            url = reverse(route.name, kwargs=detail_argument(client, route) if route.arguments else {})
        else:
            assert not route.arguments, f"{route.pattern}: give this route a name, so this test can open it"
            url = "/" + route.pattern
        if route.redirect:
            yield url, route.redirect
        elif route.name in FOR_MACHINES:
            yield url, FOR_MACHINES[route.name]
        elif route.name in STAFF_ONLY_JSON and not user.is_staff:
            yield url, 403
        else:
            yield url, SIGN_IN if route.name in STAFF_ONLY and not user.is_staff else 200


def admin_pages(user: AbstractBaseUser) -> Iterator[tuple[str, Expected]]:
    """Every admin page a person opens: the index, each app's index, and each registered
    model's changelist, add and change pages. The add page of a model the admin keeps
    read-only is a 403."""
    request = RequestFactory().get("/admin/")
    request.user = user
    yield reverse("admin:index"), 200 if user.is_staff else SIGN_IN
    for app_label in sorted({model._meta.app_label for model in admin.site._registry}):
        yield reverse("admin:app_list", args=[app_label]), 200 if user.is_staff else SIGN_IN
    for model, model_admin in sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label):
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        obj = model._default_manager.first()
        assert obj is not None, f"the shop fixture made no {model._meta.label}"
        changelist, add, change = (
            reverse(f"{name}_changelist"),
            reverse(f"{name}_add"),
            reverse(f"{name}_change", args=[quote(obj.pk)]),
        )
        if not user.is_staff:
            yield from [
                (changelist, SIGN_IN),
                (add, SIGN_IN),
                (change, SIGN_IN),
            ]
            continue
        yield changelist, 200
        yield add, 200 if model_admin.has_add_permission(request) else 403
        yield change, 200


def signed_in(user: AbstractBaseUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


def every_page(user: AbstractBaseUser) -> list[tuple[str, Expected]]:
    return [*site_pages(signed_in(user), user), *admin_pages(user)]


def inline_code(page: str) -> list[str]:
    """Script a page runs from its own markup, which the Content-Security-Policy refuses: script
    elements without src (JSON data blocks are not run), on* handler attributes, javascript: URLs."""
    found = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", page)
    for tag in re.findall(r"<[a-zA-Z][^>]*>", page):
        found += re.findall(r"\son[a-z]+\s*=|javascript:", tag)
    return found


def open_every_page(user: AbstractBaseUser) -> list[str]:
    """A line for each page that answered otherwise than it should."""
    client = signed_in(user)
    wrong = []
    for url, expected in every_page(user):
        response = client.get(url, HTTP_ACCEPT=BROWSER_ACCEPT)
        if expected == SIGN_IN:
            if response.status_code != 302 or not response["Location"].startswith("/admin/login/?next="):
                wrong.append(f"{url}: {response.status_code} {response.get('Location', '')}, expected {SIGN_IN}")
        elif response.status_code != expected:
            wrong.append(f"{url}: {response.status_code}, expected {expected}")
    return wrong


def test_the_pages_found_include_the_api_the_docs_ops_and_every_admin_model(shop, customer):
    opened = [url for url, _ in every_page(customer)]

    expected = {"/", "/api/", "/api/products/", "/api/orders/", f"/api/orders/{shop['id']}/", "/api/notifications/"}
    expected |= {"/api/docs/", "/api/schema/", "/ops/", "/admin/", "/favicon.ico"}
    expected |= {reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") for m in admin.site._registry}
    assert expected <= set(opened)
    assert any(url.startswith("/api/notifications/") and url != "/api/notifications/" for url in opened)
    assert any(url.startswith("/api/products/") and url != "/api/products/" for url in opened)


def test_staff_open_every_page_and_each_answers_200(shop, superuser):
    assert open_every_page(superuser) == []


def test_every_page_is_served_under_an_enforced_policy_and_inlines_no_script(shop, superuser):
    client = signed_in(superuser)
    wrong = []
    for url, expected in every_page(superuser):
        response = client.get(url, HTTP_ACCEPT=BROWSER_ACCEPT)
        if expected != 200 or not response["Content-Type"].startswith("text/html"):
            continue  # the policy governs what a browser renders as a page; JSON runs no script
        script_src = re.search(r"script-src ([^;]*)", response.get("Content-Security-Policy", ""))
        if not script_src or "unsafe" in script_src.group(1) or "Content-Security-Policy-Report-Only" in response:
            wrong.append(f"{url}: policy {response.get('Content-Security-Policy')!r}")
        if inline_code(response.content.decode()):
            wrong.append(f"{url}: inline code {inline_code(response.content.decode())}")

    assert wrong == []


def test_a_customer_opens_every_page_or_is_sent_SIGN_IN_for_staff_pages(shop, customer):
    assert open_every_page(customer) == []
