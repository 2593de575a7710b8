from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandParser

from eventbus.runtime import partitions
from eventbus.runtime.status import PipelineStatus, pipeline_status


def _ago(at: float | None) -> str:
    if not at:
        return "-"
    seconds = max(time.time() - at, 0)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def _reader(stream: str, owner: str) -> str:
    """Who reads a stream: a partition's lease holder ("nobody" while its lease is free), "any"
    consumer of the group for a stream that is not partitioned."""
    if partitions.logical(stream)[1] is None:
        return "any"
    return owner or "nobody"


class Command(BaseCommand):
    help = (
        "The pipeline at a glance: live relays and consumers (by heartbeat), each group's streams (each "
        "partition, with the consumer holding its lease), lag, pending and retrying messages, the outbox, "
        "dead letters. Exit 0 when every group has a live consumer, a relay is alive and nothing is past the "
        "thresholds; 1 otherwise (for cron or a health check)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
        parser.add_argument(
            "--outbox-max-age", type=float, default=60.0, help="seconds an outbox event may wait (default 60)"
        )
        parser.add_argument("--lag-max", type=int, default=10_000, help="entries a group may be behind (default 10000)")

    def handle(self, *args: object, **options: object) -> None:
        status = pipeline_status(outbox_max_age_s=options["outbox_max_age"], lag_max=options["lag_max"])  # type: ignore[arg-type]
        if options["json"]:
            self.stdout.write(json.dumps(status.as_dict(), indent=2, default=str))
        else:
            self.stdout.write("\n".join(self._lines(status)))
        if not status.healthy:
            raise SystemExit(1)

    def _lines(self, status: PipelineStatus) -> list[str]:
        lines = ["Processes"]
        if status.processes:
            lines += _table(
                ["role", "name", "host", "pid", "groups", "started", "last batch", "in hand", "processed", "dup",
                 "retries", "dead", "published"],
                [
                    [p.role, p.name, p.host, p.pid, ",".join(p.groups) or "-", _ago(p.started_at),
                     _ago(p.last_batch_at), p.batch_size, p.processed, p.duplicates, p.retries, p.dead, p.published]
                    for p in status.processes
                ],
            )  # fmt: skip
        else:
            lines.append("  none alive" if status.redis == "ok" else "  unknown: Redis is unreachable")
        lines += ["", "Groups"]
        lines += _table(
            ["group", "stream", "read by", "live consumers", "lag", "pending", "retrying"],
            [[g.group, g.stream, _reader(g.stream, g.owner), status.consumers_by_group.get(g.group, 0), g.lag,
              g.pending, g.retrying]
             for g in status.groups],
        )  # fmt: skip
        lines += [
            "",
            f"Outbox: {status.outbox_backlog} unpublished, oldest {status.outbox_oldest_age_s:.1f} s old",
            f"Dead letters waiting: {status.dead_letters}",
            *(extra["summary"] for extra in status.extras.values()),
            "",
        ]
        lines += [f"PROBLEM: {p}" for p in status.problems] or ["OK: every group has a live consumer, a relay is alive"]
        return lines
