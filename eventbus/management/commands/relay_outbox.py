from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from eventbus.runtime.process import add_metrics_port, bounded_int, serving, stop_on_signals
from eventbus.runtime.relay import Relay
from eventbus.store.recovery import republish_since


class Command(BaseCommand):
    help = "Publish committed outbox events to Redis Streams until SIGTERM/SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=bounded_int(1, 100_000), help="rows claimed per transaction")
        parser.add_argument("--once", action="store_true", help="publish what is waiting, then exit")
        parser.add_argument(
            "--republish-since",
            metavar="TIME",
            help="after Redis lost data (a crash without fsync'd persistence): mark the outbox rows kept by "
            "OUTBOX_RETENTION_S and published since TIME (ISO 8601, e.g. 2026-11-27T12:00:00Z) for publishing "
            "again, then exit; consumers drop what they had already applied",
        )
        add_metrics_port(parser)

    def handle(self, *args: object, **options: object) -> None:
        if options["republish_since"]:
            since = parse_datetime(str(options["republish_since"]))
            if since is None or since.tzinfo is None:
                raise CommandError("--republish-since needs an ISO 8601 time with a zone, e.g. 2026-11-27T12:00:00Z")
            n = republish_since(since.astimezone(dt.UTC))
            self.stdout.write(f"{n} event(s) will be published again by the relay")
            return
        relay = Relay(batch_size=options["batch_size"])  # type: ignore[arg-type]
        with serving("relay", metrics_port=options["metrics_port"]), stop_on_signals(relay.request_stop):  # type: ignore[arg-type]
            published = relay.run(once=bool(options["once"]))
        if options["once"]:
            self.stdout.write(f"published {published} event(s)")
