"""The `email` scenario: how fast one mailer process (the Procfile's `mailer`) e-mails customers
through a local SMTP server (aiosmtpd, in this process), and how long a backlog of 10,000
e-mails (--quick: 500) takes to drain. Ceiling: the same server fed by smtplib over one
connection from this process, with nothing recorded anywhere."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
import uuid
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from django.utils import timezone

from bench.fleet import Fleet
from bench.world import World
from notifications.models import Notification
from notifications.services import OrderNotice, notifications_for_orders

BACKLOG = 10_000
QUICK_BACKLOG = 500
CEILING_MESSAGES = 2_000


class _Sink:
    """Accepts every e-mail and counts it (the parsing a real server does is the server's)."""

    def __init__(self) -> None:
        self.received = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        with self.lock:
            self.received += 1
        return "250 Message accepted for delivery"


def _smtp_ceiling(port: int, n: int) -> float:
    """E-mails/s smtplib alone gets through over one connection to the same server."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "shop@localhost", "c@example.com", "ceiling"
    message.set_content("x" * 300)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        started = time.perf_counter()
        for _ in range(n):
            smtp.send_message(message)
        return n / (time.perf_counter() - started)


def _record_backlog(world: World, n: int) -> None:
    """n notifications waiting for their e-mail, recorded as the notifications group records them."""
    placed = timezone.now()
    for start in range(0, n, 1000):
        notices = [
            OrderNotice(uuid.uuid4(), world.customers[i % len(world.customers)].pk, uuid.uuid4(),
                        Notification.Kind.ORDER_CONFIRMED, {"total": "19.80"}, placed, uuid.uuid4())
            for i in range(start, min(start + 1000, n))
        ]  # fmt: skip
        notifications_for_orders(notices=notices)


def email(ctx: Any) -> dict:
    """Stop the pipeline (the mailer measured alone), record the backlog, start one mailer that
    sends to the local SMTP server, time the drain; then the pipeline as it was."""
    n = QUICK_BACKLOG if ctx.quick else BACKLOG
    groups = ctx.fleet.stop_pipeline()
    sink = _Sink()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    mailer = Fleet(ctx.key_prefix, ctx.run_dir / "logs" / "email")
    try:
        ceiling = _smtp_ceiling(port, CEILING_MESSAGES // (10 if ctx.quick else 1))
        sink.received = 0
        waiting_before = Notification.objects.filter(status__in=["pending", "sending"]).count()
        _record_backlog(ctx.world, n)
        expected = waiting_before + n
        bar = ctx.bar(expected, "email: drain backlog", "mail")
        started = time.monotonic()
        mailer.start("mailer", env={"EMAIL_URL": f"smtp://127.0.0.1:{port}", "EMAIL_POLL_INTERVAL_S": "0.1"})
        first_at = None
        while sink.received < expected:
            if first_at is None and sink.received:
                first_at = time.monotonic()
            if time.monotonic() - started > 600:
                raise RuntimeError(f"only {sink.received}/{expected} e-mails sent after 600 s")
            mailer.check_alive()
            bar.update(sink.received - bar.n)
            time.sleep(0.05)
        drain_s = time.monotonic() - started
        bar.close()
        steady_s = time.monotonic() - (first_at or started)
        deadline = time.monotonic() + 30  # the last batch is recorded just after the server took it
        while (unsent := Notification.objects.filter(status__in=["pending", "sending"]).count()) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        return {
            "backlog": expected,
            "drain_s": round(drain_s, 2),
            "emails_per_s": round(expected / steady_s),
            "ceiling_smtplib_per_s": round(ceiling),
            "ratio": round(expected / steady_s / ceiling, 3),
            "received": sink.received,
            "unsent_after": unsent,
            "mailer_cpu_s": round(mailer.cpu_seconds("mailer"), 2),
        }
    finally:
        mailer.stop()
        controller.stop()
        ctx.fleet.start_pipeline(groups)


__all__ = ["email"]
