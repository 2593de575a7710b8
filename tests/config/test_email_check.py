"""Production without EMAIL_URL would write customer e-mails to a console: each process start
says so once, as a system check warning. DEBUG and the embedded mode mean it."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

CONSOLE_EMAIL = "django.core.mail.backends.console.EmailBackend"


def email_warnings() -> list[str]:
    return [message.id for message in run_checks() if message.id == "eventshop.W001"]


def test_production_without_email_url_warns_once_when_a_process_starts(start, production_env):
    del production_env["EMAIL_URL"]

    result = start("manage.py", "check", **production_env)

    assert result.returncode == 0, "a warning, not a refusal"
    assert result.stderr.count("eventshop.W001") == 1
    assert "EMAIL_URL is not set: customer e-mails are written to the console" in result.stderr


def test_production_with_email_url_does_not_warn(start, production_env):
    result = start("manage.py", "check", **production_env)

    assert "eventshop.W001" not in result.stderr


@pytest.mark.parametrize(("debug", "embedded"), [(True, False), (False, True)], ids=["debug", "embedded"])
def test_console_e_mail_is_expected_in_development(settings, debug, embedded):
    settings.EMAIL_BACKEND = CONSOLE_EMAIL
    settings.DEBUG, settings.EMBEDDED = debug, embedded

    assert email_warnings() == []


def test_console_e_mail_on_a_real_database_is_warned_about(settings):
    settings.EMAIL_BACKEND = CONSOLE_EMAIL
    settings.DEBUG, settings.EMBEDDED = False, False

    assert email_warnings() == ["eventshop.W001"]
