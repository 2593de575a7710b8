from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.timeline import OrderNotFound, find_order, order_timeline


class Command(BaseCommand):
    help = (
        "Print an order's life in time order across every process: its events, each group that applied "
        "them (consumer, when, batch time, attempt), retries and dead letters, reservations, notifications. "
        "ORDER_ID may be the start of the id, if only one order's id starts so."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("order_id", metavar="ORDER_ID")
        parser.add_argument("--json", action="store_true", help="print JSON instead of lines")

    def handle(self, *args: object, **options: object) -> None:
        try:
            order = find_order(str(options["order_id"]))
        except OrderNotFound as exc:
            raise CommandError(str(exc)) from None
        entries = order_timeline(order)
        if options["json"]:
            document = {"order": str(order.id), "status": order.status, "timeline": [e.as_dict() for e in entries]}
            self.stdout.write(json.dumps(document, indent=2, default=str))
            return
        self.stdout.write(f"order {order.id} ({order.status}), customer {order.customer_id}")
        start = entries[0].at if entries else order.created_at
        for e in entries:
            offset = (e.at - start).total_seconds() * 1000
            details = ", ".join(f"{k}={v}" for k, v in e.detail.items() if v not in (None, ""))
            self.stdout.write(
                f"{e.at:%Y-%m-%d %H:%M:%S.%f}"[:-3]
                + f"  +{offset:8.1f} ms  {e.kind:<12} {e.what}"
                + (f"  [{details}]" if details else "")
            )
