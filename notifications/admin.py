from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from eventbus.admin import ReadOnlyAdmin
from notifications.models import Notification
from notifications.services import notifications_deliver


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """What was sent to whom, as the consumer recorded it: shown, sent again by the action."""

    list_display = ["created_at", "user", "kind", "channel", "status", "order_id", "sent_at"]
    list_filter = ["status", "kind", "channel"]
    search_fields = ["order_id", "user__username", "user__email", "subject"]
    list_select_related = ["user"]
    readonly_fields = [
        "user", "order_id", "event_id", "kind", "channel", "subject", "body", "status", "error",
        "created_at", "sent_at",
    ]  # fmt: skip
    actions = ["resend"]

    @admin.action(description="Send again (failed or stuck notifications)")
    def resend(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        ids = list(queryset.exclude(status=Notification.Status.SENT).values_list("pk", flat=True))
        Notification.objects.filter(pk__in=ids).update(status=Notification.Status.PENDING, error="")
        sent = notifications_deliver(ids=ids)
        self.message_user(request, f"Sent {sent} of {len(ids)} notification(s).", messages.INFO)
