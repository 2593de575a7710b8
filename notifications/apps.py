from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from eventbus.runtime.status import report_also
        from notifications.selectors import email_status

        report_also("email", email_status)
