"""System checks of the project's own settings: Django runs them when a management command
starts (the consumers, migrate, check), so each warning is printed once per process start."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

CONSOLE_EMAIL = "django.core.mail.backends.console.EmailBackend"


@checks.register()
def email_is_sent(app_configs: list[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Outside DEBUG and the embedded mode, customer e-mails must go somewhere but a console."""
    if settings.DEBUG or settings.EMBEDDED or settings.EMAIL_BACKEND != CONSOLE_EMAIL:
        return []
    return [
        checks.Warning(
            "EMAIL_URL is not set: customer e-mails are written to the console of the mailer (send_emails), not sent.",
            hint="Set EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587.",
            id="eventshop.W001",
        )
    ]
