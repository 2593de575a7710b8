from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandParser

from dashboard.invariants import run_checks
from eventbus.runtime.monitor import pipeline_backlog
from eventbus.runtime.process import bounded_int


class Command(BaseCommand):
    help = (
        "Check the system's invariants (stock conserved, orders hold exactly their reservations, "
        "no event applied twice, outbox flowing). Exit 1 with a report if one is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait", type=bounded_int(0, 3600), default=0, metavar="SECONDS",
            help="first wait up to this long for the pipeline to drain (outbox published, streams acknowledged)",
        )  # fmt: skip
        parser.add_argument("--outbox-max-age", type=bounded_int(1, 10**7), default=60, metavar="SECONDS")
        parser.add_argument("--pending-max-age", type=bounded_int(1, 10**7), default=300, metavar="SECONDS")

    def handle(self, *args: object, **options: object) -> None:
        if options["wait"]:
            deadline = time.monotonic() + options["wait"]  # type: ignore[operator]
            backlog = pipeline_backlog()
            while backlog.total and time.monotonic() < deadline:
                time.sleep(0.2)
                backlog = pipeline_backlog()
            if backlog.total:
                self.stderr.write(f"the pipeline did not drain in {options['wait']} s ({backlog}); checking anyway")
        checks = run_checks(
            outbox_max_age=dt.timedelta(seconds=options["outbox_max_age"]),  # type: ignore[arg-type]
            pending_max_age=dt.timedelta(seconds=options["pending_max_age"]),  # type: ignore[arg-type]
        )
        for check in checks:
            self.stdout.write(f"{'ok  ' if check.ok else 'FAIL'} {check.name}")
            for violation in check.violations:
                self.stdout.write(f"       {violation}")
            if check.total > len(check.violations):
                self.stdout.write(f"       ... and {check.total - len(check.violations)} more")
        broken = [c for c in checks if not c.ok]
        if broken:
            self.stderr.write(f"{len(broken)} invariant(s) broken")
            raise SystemExit(1)
        self.stdout.write("all invariants hold")
