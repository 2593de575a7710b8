"""The operations console: one page in the admin's look, drawn and redrawn by its script from
one JSON endpoint, and the buttons' endpoints. Reading lives in dashboard.console; the buttons
call the event bus's dead-letter services."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View

from dashboard.console import console_state, deadletters_waiting, invariants_report
from eventbus.redis.transport import TransportUnavailable
from eventbus.store.deadletters import deadletter_discard, deadletter_replay

View_ = Callable[..., HttpResponse]


def staff_only_json(view: View_) -> View_:
    """For the script's endpoints: anyone but active staff gets a JSON 403 (a redirect to the
    sign-in page would reach the script as an HTML 200)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            return JsonResponse({"detail": "Staff only: sign in to the admin.", "code": "not_staff"}, status=403)
        return view(request, *args, **kwargs)

    return wrapped


@staff_member_required
def overview(request: HttpRequest) -> HttpResponse:
    """The page: the admin's header, user bar and breadcrumbs around the console. It carries the
    first state, so it is drawn at once rather than after the first poll."""
    context = {**admin.site.each_context(request), "title": "Operations", "state": console_state()}
    return render(request, "dashboard/overview.html", context)


@staff_only_json
def state(request: HttpRequest) -> JsonResponse:
    return JsonResponse(console_state())


@staff_only_json
def invariants(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"checks": invariants_report()})


@method_decorator(staff_only_json, name="dispatch")
class DeadLettersReplay(View):
    """POST group and error: replay that console row's dead letters to their group."""

    def post(self, request: HttpRequest) -> JsonResponse:
        letters = deadletters_waiting(group=request.POST.get("group", ""), error=request.POST.get("error", ""))
        try:
            replayed = deadletter_replay(deadletters=letters)
        except TransportUnavailable as exc:
            detail = f"Redis is unreachable, nothing was replayed ({exc}); replay again once it is back."
            return JsonResponse({"detail": detail, "code": "redis_unavailable"}, status=503)
        return JsonResponse({"replayed": replayed})


@method_decorator(staff_only_json, name="dispatch")
class DeadLettersDiscard(View):
    """POST group and error: discard that console row's dead letters (kept, never replayed)."""

    def post(self, request: HttpRequest) -> JsonResponse:
        letters = deadletters_waiting(group=request.POST.get("group", ""), error=request.POST.get("error", ""))
        return JsonResponse({"discarded": deadletter_discard(deadletters=letters)})
