from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from eventbus.models import BusMemory, DeadLetter, OutboxEvent, ProcessedEvent
from eventbus.redis.transport import TransportUnavailable
from eventbus.store.deadletters import deadletter_discard, deadletter_replay


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the services write: the admin shows them (a page without Save or Delete) and acts on
    them only through the model admin's actions, which call those services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "aggregate_type", "aggregate_id", "created_at", "published_at"]
    list_filter = ["event_type", "stream", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["event_id", "aggregate_id", "correlation_id"]
    readonly_fields = [
        "event_id", "event_type", "stream", "aggregate_type", "aggregate_id", "correlation_id",
        "created_at", "published_at", "envelope",
    ]  # fmt: skip
    exclude = ["body"]

    @admin.display(description="envelope")
    def envelope(self, obj: OutboxEvent) -> str:
        return format_html("<pre>{}</pre>", _pretty(obj.body))


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(ReadOnlyAdmin):
    list_display = ["consumer_group", "event_id", "processed_at"]
    list_filter = ["consumer_group"]
    search_fields = ["event_id"]


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    """Kept for the record: replayed or discarded (the actions), never edited nor deleted."""

    list_display = ["id", "consumer_group", "event_type", "short_error", "attempts", "status", "last_failed_at"]
    list_filter = ["status", "consumer_group", "event_type", "error"]
    search_fields = ["event_id", "message_id", "error"]
    readonly_fields = [
        "consumer_group", "stream", "message_id", "event_id", "event_type", "raw_fields", "error",
        "traceback_text", "attempts", "first_failed_at", "last_failed_at", "status", "replay_count",
        "replayed_at", "resolved_at",
    ]  # fmt: skip
    exclude = ["fields", "traceback"]
    actions = ["replay", "discard"]

    @admin.display(description="error")
    def short_error(self, obj: DeadLetter) -> str:
        return obj.error if len(obj.error) <= 90 else obj.error[:87] + "..."

    @admin.display(description="fields")
    def raw_fields(self, obj: DeadLetter) -> str:
        rendered = {k: (_pretty(v) if k == "event" else v) for k, v in obj.fields.items()}
        return format_html("<pre>{}</pre>", "\n".join(f"{k}: {v}" for k, v in rendered.items()))

    @admin.display(description="traceback")
    def traceback_text(self, obj: DeadLetter) -> str:
        return format_html("<pre>{}</pre>", obj.traceback or "-")

    @admin.action(description="Replay to the group that failed them")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        try:
            n = deadletter_replay(deadletters=queryset)
        except TransportUnavailable as exc:
            self.message_user(request, f"Redis is unavailable, nothing replayed: {exc}", messages.ERROR)
            return
        self.message_user(request, f"Replayed {n} dead letter(s).", messages.SUCCESS)

    @admin.action(description="Discard (never replay)")
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        n = deadletter_discard(deadletters=queryset)
        self.message_user(request, f"Discarded {n} dead letter(s).", messages.SUCCESS)


@admin.register(BusMemory)
class BusMemoryAdmin(ReadOnlyAdmin):
    """What the relay last verified of Redis (eventbus.store.recovery): read-only."""

    list_display = ["key_prefix", "token", "checked_at", "settled_before"]
    readonly_fields = ["key_prefix", "token", "checked_at", "settled_before", "seen"]
