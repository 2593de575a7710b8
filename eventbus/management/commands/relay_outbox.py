from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from eventbus.process import bounded_int, stop_on_signals
from eventbus.relay import Relay


class Command(BaseCommand):
    help = "Publish committed outbox events to Redis Streams until SIGTERM/SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=bounded_int(1, 100_000), help="rows claimed per transaction")
        parser.add_argument("--once", action="store_true", help="publish what is waiting, then exit")

    def handle(self, *args: object, **options: object) -> None:
        relay = Relay(batch_size=options["batch_size"])  # type: ignore[arg-type]
        with stop_on_signals(relay.request_stop):
            published = relay.run(once=bool(options["once"]))
        if options["once"]:
            self.stdout.write(f"published {published} event(s)")
