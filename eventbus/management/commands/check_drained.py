from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandParser

from eventbus.messages import registry
from eventbus.models import OutboxEvent
from eventbus.redis.transport import Transport, get_transport
from eventbus.runtime.process import bounded_int


def in_flight(transport: Transport) -> list[str]:
    """What is not finished, one line each: unpublished outbox rows, and for every stream that
    exists under a registered name (one stream or its partitions, whatever the partition count
    was when they were written) the entries some group has not received or not acknowledged,
    and the messages waiting for a retry."""
    lines = []
    unpublished = OutboxEvent.objects.filter(published_at__isnull=True).count()
    if unpublished:
        lines.append(f"outbox: {unpublished} events not yet published")
    streams = [name for stream in registry.logical_streams() for name in transport.stream_keys(stream)]
    streams += [Transport.replay_stream(g) for g in registry.groups()]
    for stream in streams:
        for g in transport.groups(stream):
            if g.lag or g.pending:
                waiting = f"{g.lag} entries not yet delivered, {g.pending} unacknowledged"
                lines.append(f"{stream}: group {g.name}: {waiting}")
    for group in registry.groups():
        retrying = transport.retries.count(group)
        if retrying:
            lines.append(f"group {group}: {retrying} messages waiting for a retry")
    return lines


class Command(BaseCommand):
    help = (
        "Exit 0 once nothing is in flight: every outbox event published and every entry of every stream (each "
        "partition, under any partition count) delivered and acknowledged by every group; 1 otherwise, listing "
        "what is left. Run it, with the web stopped, before changing EVENTBUS_PARTITIONS (docs/scaling.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait", type=bounded_int(0, 86_400), default=0, metavar="SECONDS",
            help="wait up to this long for the pipeline to drain before answering",
        )  # fmt: skip

    def handle(self, *args: object, **options: object) -> None:
        transport = get_transport()  # unreachable: manage.py says so in one line
        deadline = time.monotonic() + options["wait"]  # type: ignore[operator]
        left = in_flight(transport)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = in_flight(transport)
        if left:
            self.stdout.write("NOT drained:\n" + "\n".join(f"  {line}" for line in left))
            raise SystemExit(1)
        self.stdout.write("drained: nothing in flight")
