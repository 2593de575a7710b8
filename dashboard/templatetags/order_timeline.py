"""{% order_timeline order %}: the order's life across every process (dashboard.timeline), for
the admin's order page."""

from __future__ import annotations

from typing import Any

from django import template

from dashboard.timeline import order_timeline as timeline

register = template.Library()


@register.inclusion_tag("dashboard/order_timeline.html")
def order_timeline(order: Any) -> dict[str, Any]:
    entries = timeline(order)
    start = entries[0].at if entries else None
    return {
        "order": order,
        "entries": [(e, (e.at - start).total_seconds() * 1000 if start else 0) for e in entries],
        "dead_letters": [e for e in entries if e.kind == "dead letter"],
        "dead_letter_ids": ",".join(str(e.detail["id"]) for e in entries if e.kind == "dead letter"),
    }
