from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard.invariants import run_checks
from eventbus.models import DeadLetter
from eventbus.monitor import pipeline_backlog
from eventbus.transport import TransportUnavailable, get_transport
from orders.models import Order


@staff_member_required
def overview(request: HttpRequest) -> HttpResponse:
    """The pipeline at a glance: outbox, streams and groups, dead letters, order outcomes."""
    # The admin's own context (site header, user bar, nav sidebar): the page is part of the admin.
    context: dict[str, object] = {**admin.site.each_context(request), "title": "Operations", "now": timezone.now()}
    try:
        backlog = pipeline_backlog()
        transport = get_transport()
        context["backlog"] = backlog
        context["streams"] = [
            {"name": s, "length": transport.stream_length(s)} for s in sorted({g.stream for g in backlog.groups})
        ]
    except TransportUnavailable as exc:
        context["redis_error"] = str(exc)
    since = timezone.now() - dt.timedelta(hours=1)
    all_time = dict(Order.objects.values_list("status").annotate(n=Count("id")))
    last_hour = dict(Order.objects.filter(created_at__gte=since).values_list("status").annotate(n=Count("id")))
    # Every status gets a row, and a status no order has is a 0, not a blank.
    context["orders_by_status"] = [
        {"label": status.label, "all_time": all_time.get(status.value, 0), "last_hour": last_hour.get(status.value, 0)}
        for status in Order.Status
    ]
    context["dead_by_group"] = list(
        DeadLetter.objects.filter(status=DeadLetter.Status.DEAD)
        .values("consumer_group", "event_type")
        .annotate(n=Count("id"))
        .order_by("consumer_group", "event_type")
    )
    context["recent_orders"] = Order.objects.select_related("customer")[:15]
    if request.GET.get("check") == "1":
        context["checks"] = run_checks(outbox_max_age=dt.timedelta(seconds=60), pending_max_age=dt.timedelta(minutes=5))
    return render(request, "dashboard/overview.html", context)
