from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from django.utils import timezone

from notifications.models import Notification
from notifications.services import OrderNotice, notifications_for_orders
from tests.factories import UserFactory
from tests.notifications.smtpserver import SmtpServer


@pytest.fixture
def smtp(settings: object) -> Iterator[SmtpServer]:
    """A real SMTP server the test starts (it starts down), and the settings that send to it:
    Django's SMTP backend, a 1 s EMAIL_TIMEOUT, retries that come quickly."""
    server = SmtpServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # type: ignore[attr-defined]
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port  # type: ignore[attr-defined]
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False  # type: ignore[attr-defined]
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""  # type: ignore[attr-defined]
    settings.EMAIL_TIMEOUT = 1.0  # type: ignore[attr-defined]
    settings.EMAIL_RETRY_BASE_S = 0.05  # type: ignore[attr-defined]
    settings.EMAIL_RETRY_MAX_S = 0.1  # type: ignore[attr-defined]
    yield server
    server.stop()


Record = Callable[..., list[Notification]]


@pytest.fixture
def record() -> Record:
    """Record `n` order notifications as the notifications group does; returns them."""

    def run(n: int = 1, *, user: object = None) -> list[Notification]:
        customer = user or UserFactory()
        notices = [
            OrderNotice(
                uuid.uuid4(), customer.pk, uuid.uuid4(), Notification.Kind.ORDER_REJECTED, {"reason": "out of stock"},
                timezone.now(), uuid.uuid4(),
            )
            for _ in range(n)
        ]  # fmt: skip
        notifications_for_orders(notices=notices)
        return list(Notification.objects.filter(event_id__in=[x.event_id for x in notices]).order_by("pk"))

    return run
