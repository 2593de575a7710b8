"""Plumbing shared by the bus's long-running commands: signal handling, argument types, and
what a process sets up before it starts working (its role in the logs, its own metrics port,
traces)."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Callable, Iterator

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventbus.redis.durability import say_what_redis_keeps
from eventbus.runtime.consumer import Consumer
from eventbus.runtime.logcontext import set_role
from eventbus.runtime.tracing import configure_tracing, flush_traces

__all__ = ["ConsumeCommand", "add_metrics_port", "bounded_int", "serving", "stop_on_signals"]


def add_metrics_port(parser: CommandParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=bounded_int(0, 65535),
        help="serve this process's Prometheus metrics on this port (env METRICS_PORT; 0: not at all). Scrape "
        "either these ports or the web's /metrics, never both",
    )


@contextlib.contextmanager
def serving(role: str, *, metrics_port: int | None) -> Iterator[None]:
    """Run a long-running command as `role` (web, relay, consumer:<group>): named in its log
    lines, its metrics on metrics_port (or METRICS_PORT) if given, its traces exported if
    OTEL_* configures it, and flushed when it ends."""
    set_role(role)
    configure_tracing(role.replace(":", "-"))
    say_what_redis_keeps(role)
    port = metrics_port if metrics_port is not None else settings.METRICS_PORT
    if port:
        from prometheus_client import start_http_server

        try:
            start_http_server(port)
        except OSError as exc:
            raise CommandError(
                f"cannot serve metrics on port {port} ({exc.strerror}): choose another --metrics-port"
            ) from None
    try:
        yield
    finally:
        flush_traces()


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
        parser.add_argument("--consumer", help="consumer name within the group (default: host, pid and a random part)")
        parser.add_argument(
            "--batch-size", type=bounded_int(1, 10_000), help="messages read and applied per transaction"
        )
        parser.add_argument(
            "--block-ms",
            type=bounded_int(10, 600_000),
            help="how long one XREADGROUP waits for new messages (it returns as soon as one arrives)",
        )
        parser.add_argument("--once", action="store_true", help="process what is waiting, then exit")
        add_metrics_port(parser)

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
        with (
            serving(f"consumer:{self.group}", metrics_port=options["metrics_port"]),
            stop_on_signals(  # type: ignore[arg-type]
                consumer.request_stop
            ),
        ):
            stats = consumer.run(once=bool(options["once"]))
        if options["once"]:
            self.stdout.write(
                f"{self.group}: {stats.processed} processed, {stats.duplicates} duplicates, "
                f"{stats.retried} retries scheduled, {stats.dead} dead-lettered"
            )
