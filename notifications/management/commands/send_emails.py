from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from eventbus.runtime.process import add_metrics_port, bounded_int, serving, stop_on_signals
from notifications.mailer import Mailer
from notifications.services import notifications_replay


class Command(BaseCommand):
    help = (
        "E-mail customers their notifications until SIGTERM/SIGINT: each one until a mail server accepts it, "
        "retried with backoff for EMAIL_RETRY_WINDOW_S, then a dead letter (docs/operations.md, E-mail delivery)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=bounded_int(1, 10_000), help="e-mails sent over one connection")
        parser.add_argument("--once", action="store_true", help="send what is due, then exit")
        parser.add_argument(
            "--replay-dead", action="store_true", help="queue every dead e-mail again (due now), then exit"
        )
        add_metrics_port(parser)

    def handle(self, *args: object, **options: object) -> None:
        if options["replay_dead"]:
            self.stdout.write(f"{notifications_replay()} dead e-mail(s) queued again")
            return
        mailer = Mailer(batch_size=options["batch_size"])  # type: ignore[arg-type]
        with serving("mailer", metrics_port=options["metrics_port"]), stop_on_signals(mailer.request_stop):  # type: ignore[arg-type]
            sent = mailer.run(once=bool(options["once"]))
        if options["once"]:
            self.stdout.write(f"sent {sent} e-mail(s)")
