"""Where an order's milliseconds go, hop by hop, from what the system already records:

- placed: the order's `created_at` (written in its placing transaction);
- published: the stream entry's id, `<ms>-<seq>`, Redis's clock at XADD, as each consumer
  group's inbox row (ProcessedEvent.message_id) keeps it: 1 ms resolution, truncated, so a
  hop into or out of "published" carries up to 1 ms of rounding (a hop can show -0.9 ms);
- read: the inbox row's `processed_at`, the start of the consumer's batch (just after
  XREADGROUP returned; timezone.now() in eventbus.runtime.batch);
- reserved: the first Reservation's `created_at`; confirmed: the order's `confirmed_at`;
  notified: its Notification's `created_at`.

All clocks are this host's. The hops of one order add up to placed -> notified."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Min

from bench.stats import summary

# (hop label, from point, to point), in the order an order travels.
HOPS = (
    ("placed -> published", "placed", "published_placed"),
    ("published -> read (inventory)", "published_placed", "read_inventory"),
    ("read -> reserved", "read_inventory", "reserved"),
    ("reserved -> published", "reserved", "published_reserved"),
    ("published -> read (orders)", "published_reserved", "read_orders"),
    ("read -> confirmed", "read_orders", "confirmed"),
    ("confirmed -> published", "confirmed", "published_confirmed"),
    ("published -> read (notifications)", "published_confirmed", "read_notifications"),
    ("read -> notified", "read_notifications", "notified"),
)
# The consumer group whose inbox row dates the publication of, and the reading of, each event.
GROUP_POINTS = {
    "inventory": ("published_placed", "read_inventory"),
    "orders": ("published_reserved", "read_orders"),
    "notifications": ("published_confirmed", "read_notifications"),
}


def _stream_time(message_id: str) -> dt.datetime | None:
    ms, _, _ = message_id.partition("-")
    if not ms.isdigit():
        return None
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC)


def points(order_ids: list) -> dict[Any, dict[str, dt.datetime]]:
    """Per order, the time of each point of HOPS it reached."""
    from eventbus.models import ProcessedEvent
    from inventory.models import Reservation
    from notifications.models import Notification
    from orders.models import Order

    out: dict[Any, dict[str, dt.datetime]] = {}
    for pk, created_at, confirmed_at in Order.objects.filter(pk__in=order_ids).values_list(
        "pk", "created_at", "confirmed_at"
    ):
        out[pk] = {"placed": created_at, **({"confirmed": confirmed_at} if confirmed_at else {})}
    by_text = {str(pk): pk for pk in out}
    reserved = Reservation.objects.filter(order_id__in=order_ids).values_list("order_id").annotate(t=Min("created_at"))
    for pk, at in reserved:
        out[pk]["reserved"] = at
    for pk, at in Notification.objects.filter(order_id__in=order_ids).values_list("order_id", "created_at"):
        out[pk].setdefault("notified", at)
    inbox = ProcessedEvent.objects.filter(aggregate_id__in=list(by_text), consumer_group__in=list(GROUP_POINTS))
    for group, aggregate, message_id, processed_at in inbox.values_list(
        "consumer_group", "aggregate_id", "message_id", "processed_at"
    ):
        published, read = GROUP_POINTS[group]
        row = out[by_text[aggregate]]
        if (at := _stream_time(message_id)) is not None:
            row[published] = at
        row[read] = processed_at
    return out


def hop_latencies(order_ids: list) -> dict[str, list[float]]:
    """Per hop, the ms each order spent in it (orders that reached both ends)."""
    per_order = points(order_ids)
    hops: dict[str, list[float]] = {label: [] for label, _, _ in HOPS}
    for p in per_order.values():
        for label, start, end in HOPS:
            if start in p and end in p:
                hops[label].append((p[end] - p[start]).total_seconds() * 1000)
    return hops


def hop_table(order_ids: list) -> dict[str, dict]:
    """p50/p99 (and max, n) per hop."""
    return {label: summary(values, (50, 99)) for label, values in hop_latencies(order_ids).items()}


def rows(hops: dict[str, dict[str, dict]]) -> list[tuple[str, str, str, str]]:
    """The report's rows: one per rate and hop."""
    out = []
    for phase, table in hops.items():
        rate = phase.split("_")[0]
        for label, s in table.items():
            out.append(
                (f"hop @{rate}/s: {label}, ms", f"p50 {s['p50']}  p99 {s['p99']}", f"max {s['max']}, n={s['n']}", "")
            )
    return out
