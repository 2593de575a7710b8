from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from eventbus.models import DeadLetter
from eventbus.runtime.process import bounded_int
from eventbus.store.deadletters import deadletter_discard, deadletter_replay

STATUSES = [s.value for s in DeadLetter.Status]


class Command(BaseCommand):
    help = "Inspect, replay or discard dead letters: list | show ID | replay ... | discard ..."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,show,replay,discard}")
        listing = actions.add_parser("list", help="list dead letters, newest failure first")
        listing.add_argument("--group", help="only this consumer group")
        listing.add_argument("--status", choices=[*STATUSES, "all"], default="dead", help="default: dead")
        listing.add_argument("--limit", type=bounded_int(1, 100_000), default=50)
        show = actions.add_parser("show", help="everything about one dead letter")
        show.add_argument("id", type=bounded_int(1, 2**63 - 1))
        for name, verb in (("replay", "deliver again to the group that failed them"), ("discard", "give up on")):
            sub = actions.add_parser(name, help=f"{verb}: by id, by group, or all")
            sub.add_argument("ids", nargs="*", type=bounded_int(1, 2**63 - 1), metavar="ID")
            sub.add_argument("--group", help="every open dead letter of this group")
            sub.add_argument("--all", action="store_true", help="every open dead letter")

    def handle(self, *args: object, **options: object) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _list(self, options: dict) -> None:
        rows = DeadLetter.objects.all()
        if options["group"]:
            rows = rows.filter(consumer_group=options["group"])
        if options["status"] != "all":
            rows = rows.filter(status=options["status"])
        rows = list(rows[: options["limit"]])
        if not rows:
            self.stdout.write("no dead letters")
            return
        self.stdout.write(f"{'ID':>6}  {'GROUP':14} {'TYPE':36} {'TRIES':>5}  {'STATUS':9} {'LAST FAILURE':20} ERROR")
        for d in rows:
            error = " ".join(d.error.split())
            self.stdout.write(
                f"{d.pk:>6}  {d.consumer_group:14} {(d.event_type or '?')[:36]:36} {d.attempts:>5}  {d.status:9} "
                f"{d.last_failed_at:%Y-%m-%d %H:%M:%S}  {error[:80]}"
            )

    def _show(self, options: dict) -> None:
        d = DeadLetter.objects.filter(pk=options["id"]).first()
        if d is None:
            raise CommandError(f"no dead letter with id {options['id']}: see `manage.py deadletters list --status all`")
        for label, value in (
            ("id", d.pk), ("group", d.consumer_group), ("stream", d.stream), ("message id", d.message_id),
            ("event id", d.event_id), ("event type", d.event_type), ("status", d.status),
            ("attempts", d.attempts), ("first failure", d.first_failed_at), ("last failure", d.last_failed_at),
            ("replays", d.replay_count), ("replayed at", d.replayed_at), ("resolved at", d.resolved_at),
            ("error", d.error),
        ):  # fmt: skip
            self.stdout.write(f"{label:>14}: {value if value not in (None, '') else '-'}")
        self.stdout.write("        fields:")
        for key, value in d.fields.items():
            try:
                value = json.dumps(json.loads(value), indent=2, sort_keys=True).replace("\n", "\n" + " " * 18)
            except ValueError:
                pass
            self.stdout.write(f"{' ' * 16}{key}: {value}")
        if d.traceback:
            self.stdout.write("     traceback:")
            self.stdout.write(d.traceback.rstrip())

    def _select(self, options: dict) -> QuerySet[DeadLetter]:
        ids, group, everything = options["ids"], options["group"], options["all"]
        if sum(bool(x) for x in (ids, group, everything)) != 1:
            raise CommandError("say which dead letters: give IDs, or --group NAME, or --all")
        if ids:
            found = set(DeadLetter.objects.filter(pk__in=ids).values_list("pk", flat=True))
            missing = sorted(set(ids) - found)
            if missing:
                raise CommandError(f"no dead letter with id {', '.join(map(str, missing))}")
            return DeadLetter.objects.filter(pk__in=ids)
        if group:
            return DeadLetter.objects.filter(consumer_group=group)
        return DeadLetter.objects.all()

    def _replay(self, options: dict) -> None:
        n = deadletter_replay(deadletters=self._select(options))
        self.stdout.write(f"replayed {n} dead letter(s); each goes back to the group that failed it")

    def _discard(self, options: dict) -> None:
        n = deadletter_discard(deadletters=self._select(options))
        self.stdout.write(f"discarded {n} dead letter(s)")
