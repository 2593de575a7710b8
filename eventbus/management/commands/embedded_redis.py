from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventbus.redis import embedded


class Command(BaseCommand):
    help = "Start, stop or locate the embedded Redis server under var/redis/ (used when REDIS_URL is unset)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["start", "stop", "url"])

    def handle(self, *args: object, **options: object) -> None:
        directory = settings.VAR_DIR / "redis"
        try:
            if options["action"] == "start":
                self.stdout.write(embedded.ensure_server(directory))
            elif options["action"] == "stop":
                stopped = embedded.stop_server(directory)
                self.stdout.write("embedded Redis stopped" if stopped else "embedded Redis was not running")
            else:
                self.stdout.write(f"unix://{embedded.socket_path(directory)}")
        except embedded.EmbeddedServerError as exc:
            raise CommandError(str(exc)) from None
