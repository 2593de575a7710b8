from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from eventbus.admin import ReadOnlyAdmin
from notifications.models import Notification
from notifications.services import notifications_replay


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """What was sent to whom: shown, never edited; dead e-mails are sent again by the action."""

    list_display = [
        "created_at", "user", "kind", "channel", "status", "attempts", "next_attempt_at", "order_id", "sent_at",
    ]  # fmt: skip
    list_filter = ["status", "kind", "channel"]
    search_fields = ["order_id", "user__username", "user__email", "subject"]
    list_select_related = ["user"]
    readonly_fields = [
        "user", "order_id", "event_id", "correlation_id", "kind", "channel", "subject", "body", "status", "error",
        "attempts", "created_at", "queued_at", "next_attempt_at", "sent_at",
    ]  # fmt: skip
    exclude = ["order_placed_at"]
    actions = ["replay"]

    @admin.action(description="Send again (dead e-mails: queued now, with a fresh retry window)")
    def replay(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        chosen = queryset.count()
        queued = notifications_replay(ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            f"Queued {queued} dead e-mail(s) of {chosen} chosen; the mailer sends them now (the others are sent or "
            "still being retried).",
            messages.INFO,
        )
