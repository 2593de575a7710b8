"""Plumbing shared by the bus's long-running commands: signal handling and argument types."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Callable, Iterator

from django.core.management.base import BaseCommand, CommandParser

from eventbus.consumer import Consumer

__all__ = ["ConsumeCommand", "bounded_int", "stop_on_signals"]


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """Route SIGTERM and SIGINT to request_stop (finish the message in hand, then exit 0)."""
    previous = {}

    def handler(signum: int, frame: object) -> None:
        request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {low}..{high}")
        return value

    return parse


class ConsumeCommand(BaseCommand):
    """Base for `consume_<group>` commands: arguments, signals, run. Nothing else."""

    group: str

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", help="consumer name within the group (default: host and pid)")
        parser.add_argument(
            "--batch-size", type=bounded_int(1, 10_000), help="messages read and applied per transaction"
        )
        parser.add_argument(
            "--block-ms",
            type=bounded_int(10, 600_000),
            help="how long one XREADGROUP waits for new messages (it returns as soon as one arrives)",
        )
        parser.add_argument("--once", action="store_true", help="process what is waiting, then exit")

    @property
    def help(self) -> str:  # type: ignore[override]
        return f"Run a consumer of the {self.group!r} group until SIGTERM/SIGINT."

    def handle(self, *args: object, **options: object) -> None:
        consumer = Consumer(
            self.group,
            name=options["consumer"] or None,  # type: ignore[arg-type]
            batch_size=options["batch_size"],  # type: ignore[arg-type]
            block_ms=options["block_ms"],  # type: ignore[arg-type]
        )
        with stop_on_signals(consumer.request_stop):
            stats = consumer.run(once=bool(options["once"]))
        if options["once"]:
            self.stdout.write(
                f"{self.group}: {stats.processed} processed, {stats.duplicates} duplicates, "
                f"{stats.retried} retries scheduled, {stats.dead} dead-lettered"
            )
