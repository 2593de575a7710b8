"""When Redis forgets: noticing that it lost data, and announcing again what never arrived.

Redis can lose writes it acknowledged: restarted without persistence (this machine's own Redis
keeps nothing on disk), flushed, or failed over to a replica that had not received the newest
entries. The outbox keeps published rows for OUTBOX_RETENTION_S (an hour by default) so that
they can be published again; the consumers' inbox drops whatever had arrived after all. The
relay runs both mechanisms below in its housekeeping, so the system heals with no operator:

- `check_memory` (every TRIM_INTERVAL_S, and at once when Redis comes back after an outage):
  Redis holds a token the relay wrote into it, and the database remembers that token, each
  stream's last entry id, each group's streams, and the time before which every group had
  handled every event. A different token (Redis emptied), a last id that went back (entries
  lost) or a group that vanished is a loss, and every kept row published since that time is
  published again at once.
- `Reconciler` (every RECONCILE_INTERVAL_S): for each group, the kept rows of the event types it
  handles, published more than RECONCILE_AFTER_S ago and below what the group has delivered
  and acknowledged on its streams, that the group has neither in its inbox nor in its dead
  letters, were lost on the way: they are published again. This catches what the check cannot
  see (a loss and a rewrite between two checks, an entry deleted by hand), a few minutes later.

Both only mark rows unpublished (`published_at = NULL`); the relay's next batch publishes them,
with their own event ids, so nothing downstream can apply them twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone
from prometheus_client import Counter as Metric

from eventbus.messages import registry
from eventbus.models import BusMemory, DeadLetter, OutboxEvent, ProcessedEvent
from eventbus.redis.client import id_key
from eventbus.redis.transport import Transport

__all__ = ["Loss", "Reconciler", "check_memory", "republish_since"]

log = logging.getLogger(__name__)

# Stream ids carry Redis's clock, published_at the relay's: allow them to differ this much.
CLOCK_MARGIN = dt.timedelta(seconds=5)
# The most of the outbox one reconciler run reads per group (a relay that starts reads the
# whole retention window, a slice per run).
RECONCILE_WINDOW = dt.timedelta(minutes=10)

REDIS_LOSSES = Metric(
    "eventbus_redis_losses",
    "Times the relay found that Redis had lost data it held (reason: emptied, went_back, group_gone).",
    ["reason"],
)
REANNOUNCED = Metric(
    "eventbus_events_reannounced",
    "Outbox events published again because Redis lost them: by the loss check (redis_lost) or the reconciler "
    "(reconciler, with the group that never got them).",
    ["cause", "group"],
)
RECONCILER_RUNS = Metric("eventbus_reconciler_runs", "Runs of the reconciler (in the relay).")


def ms_time(entry_id: str) -> dt.datetime:
    """The time a stream entry id carries (Redis's clock when it was added)."""
    return dt.datetime.fromtimestamp(id_key(entry_id)[0] / 1000, tz=dt.UTC)


def republish_since(since: dt.datetime) -> int:
    """Mark rows kept after publishing (OUTBOX_RETENTION_S) and published since `since` as
    unpublished again, so the relay publishes them once more. Returns how many."""
    return OutboxEvent.objects.filter(published_at__gte=since).update(published_at=None)


@dataclass(frozen=True, slots=True)
class Loss:
    """Redis lost data: why, and since when events may be missing."""

    reason: str  # emptied | went_back | group_gone
    detail: str
    since: dt.datetime


def _settled_before(transport: Transport, now: dt.datetime) -> tuple[dt.datetime, list[str]]:
    """The time before which every group had delivered and acknowledged every entry of its
    streams, and the groups found (as "group@stream")."""
    oldest = now
    found = []
    for group in registry.groups():
        for stream in registry.streams_for(group):
            progress = transport.delivered_up_to(stream, group)
            if progress is None:
                continue
            found.append(f"{group}@{stream}")
            upto, caught_up = progress
            if not caught_up:
                oldest = min(oldest, ms_time(upto))
    return oldest, found


def check_memory(transport: Transport, *, now: dt.datetime | None = None) -> Loss | None:
    """Compare what Redis holds with what the database remembers of it; on a loss, mark every
    kept outbox row published since it could have begun unpublished (the relay publishes them
    again) and return it. Several relays may run this at once: the remembered state is read
    and written under a row lock."""
    now = now or timezone.now()
    streams = sorted(registry.subscriptions())
    with transaction.atomic():
        memory = BusMemory.objects.select_for_update().filter(key_prefix=transport.prefix).first()
        # A fresh candidate: it is stored only if Redis holds no token (new, or emptied).
        token = transport.incarnation(uuid.uuid4().hex)
        ids = transport.last_ids(streams)
        settled, groups = _settled_before(transport, now)
        loss = _compare(memory, token, ids, groups) if memory else None
        if loss is not None:
            reason, detail, since = loss
            loss = Loss(reason, detail, since - CLOCK_MARGIN)
            republished = republish_since(loss.since)
            REDIS_LOSSES.labels(reason).inc()
            REANNOUNCED.labels("redis_lost", "").inc(republished)
            log.warning(
                "Redis lost data (%s: %s); publishing again the %d kept outbox events published since %s",
                reason, detail, republished, loss.since.isoformat(timespec="seconds"),
            )  # fmt: skip
        BusMemory.objects.update_or_create(
            key_prefix=transport.prefix,
            defaults={"token": token, "checked_at": now, "settled_before": settled,
                      "seen": {"ids": ids, "groups": groups, "handled": _handled_since(memory, now)}},
        )  # fmt: skip
    return loss


def _handled_since(memory: BusMemory | None, now: dt.datetime) -> dict[str, dict[str, str]]:
    """When each group began handling each event type, as first seen by a check: the
    reconciler judges a group only on events published after that (a type a group skipped
    before a deploy left no inbox row, and is not lost)."""
    known: dict[str, dict[str, str]] = memory.seen.get("handled", {}) if memory else {}
    return {
        group: {t: known.get(group, {}).get(t, now.isoformat()) for t in registry.handled_types(group)}
        for group in registry.groups()
    }


def handled_since(prefix: str) -> dict[str, dict[str, dt.datetime]]:
    """What `_handled_since` recorded for this key prefix (empty before the first check)."""
    memory = BusMemory.objects.filter(key_prefix=prefix).first()
    handled = memory.seen.get("handled", {}) if memory else {}
    return {g: {t: dt.datetime.fromisoformat(at) for t, at in types.items()} for g, types in handled.items()}


def _compare(
    memory: BusMemory, token: str, ids: dict[str, str], groups: list[str]
) -> tuple[str, str, dt.datetime] | None:
    if token != memory.token:
        return "emptied", "it no longer holds the token the relay wrote into it", memory.settled_before
    seen_ids: dict[str, str] = memory.seen.get("ids", {})
    back = sorted(s for s, i in seen_ids.items() if s in ids and id_key(ids[s]) < id_key(i))
    if back:
        detail = ", ".join(f"stream {s} last id {ids[s]}, was {seen_ids[s]}" for s in back)
        # Lost: the entries after the stream's last id now. Those published before
        # settled_before had been handled by every group: losing them changes nothing.
        return "went_back", detail, max(memory.settled_before, min(ms_time(ids[s]) for s in back))
    # Only groups this code still runs on streams of the partition count in force: a group
    # removed from the code, or the names of another partition count, are not a loss.
    expected = {f"{g}@{s}" for g in registry.groups() for s in registry.streams_for(g)}
    gone = sorted((set(memory.seen.get("groups", [])) & expected) - set(groups))
    if gone:
        return "group_gone", "consumer group(s) " + ", ".join(gone) + " vanished", memory.settled_before
    return None


class Reconciler:
    """Finds the kept outbox rows some group that handles them never got (see the module
    docstring) and marks them unpublished. One per relay process; it remembers per group how
    far it has checked, starting from the whole retention window."""

    def __init__(self, *, after_s: float, retention_s: float) -> None:
        self.after = dt.timedelta(seconds=after_s)
        self.retention = dt.timedelta(seconds=retention_s)
        self._checked_to: dict[str, dt.datetime] = {}
        self.runs = 0

    def run(self, transport: Transport, *, now: dt.datetime | None = None) -> Counter[str]:
        """One pass over every group; returns how many events each group was missing (their rows
        are marked unpublished)."""
        now = now or timezone.now()
        missing: dict[str, list[int]] = {}
        checked = 0
        checked_to: dict[str, dt.datetime] = {}
        since = handled_since(transport.prefix)
        for group in registry.groups():
            window = self._window(transport, group, now)
            if window is None:
                continue
            start, end = window
            # Each type from when the group began handling it (unknown yet: not judged).
            types = Q()
            for event_type in registry.handled_types(group):
                if event_type in since.get(group, {}):
                    types |= Q(event_type=event_type, published_at__gt=since[group][event_type])
            if types:
                rows = OutboxEvent.objects.filter(types, published_at__gt=start, published_at__lte=end)
                checked += rows.count()
                lost = rows.exclude(
                    Exists(ProcessedEvent.objects.filter(consumer_group=group, event_id=OuterRef("event_id")))
                ).exclude(Exists(DeadLetter.objects.filter(consumer_group=group, event_id=OuterRef("event_id"))))
                ids = list(lost.values_list("id", flat=True))
                if ids:
                    missing[group] = ids
            checked_to[group] = end
        found = Counter({g: len(ids) for g, ids in missing.items()})
        # Marked, then remembered as checked: an error half-way checks the same windows again.
        OutboxEvent.objects.filter(id__in={i for ids in missing.values() for i in ids}).update(published_at=None)
        self._checked_to.update(checked_to)
        if missing:
            for group, n in found.items():
                REANNOUNCED.labels("reconciler", group).inc(n)
            log.warning(
                "reconciler: %d outbox events published more than %ds ago never reached a group that handles them "
                "(%s); publishing them again",
                sum(found.values()), self.after.total_seconds(),
                ", ".join(f"{g}: {n}" for g, n in sorted(found.items())),
            )  # fmt: skip
        else:
            log.info("reconciler: %d published events checked, none missing", checked)
        self.runs += 1
        RECONCILER_RUNS.inc()
        return found

    def _window(self, transport: Transport, group: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """The publication times to check for the group: from where the last run stopped to
        RECONCILE_AFTER_S ago, but no further than what the group has delivered and
        acknowledged on every stream it reads (an event still waiting there is not lost)."""
        start = self._checked_to.get(group)
        if start is None:  # from the oldest kept row (an index lookup), at most the retention
            oldest = OutboxEvent.objects.filter(published_at__isnull=False).aggregate(t=Min("published_at"))["t"]
            if oldest is None:
                return None
            start = max(now - self.retention, oldest - dt.timedelta(microseconds=1))
        end = now - self.after
        for stream in registry.streams_for(group):
            progress = transport.delivered_up_to(stream, group)
            if progress is None:  # the group does not exist (yet): nothing of it can be judged
                return None
            upto, caught_up = progress
            if not caught_up:  # what it has not handled yet may still be waiting on the stream
                end = min(end, ms_time(upto) - CLOCK_MARGIN)
        end = min(end, start + RECONCILE_WINDOW)
        return (start, end) if end > start else None


def enabled() -> bool:
    """Whether the relay keeps rows long enough for the reconciler to have anything to check."""
    conf = settings.EVENTBUS
    return (
        conf["RECONCILE_AFTER_S"] > 0
        and conf["OUTBOX_RETENTION_S"] > conf["RECONCILE_AFTER_S"]
        # An inbox purged before the outbox would make every older kept row look never handled.
        and conf["INBOX_RETENTION_S"] >= conf["OUTBOX_RETENTION_S"]
    )
