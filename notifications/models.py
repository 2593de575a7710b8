from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    """A message to a customer about an order, one per event (the unique event_id is what keeps
    a customer from getting two e-mails for the same event), and the state of its e-mail: waiting
    (pending, or sending: claimed by a mailer until next_attempt_at), sent (sent_at: when a mail
    server accepted it), or dead (refused for good, or not accepted within the retry window)."""

    class Kind(models.TextChoices):
        ORDER_CONFIRMED = "order_confirmed", "order confirmed"
        ORDER_REJECTED = "order_rejected", "order rejected"
        ORDER_CANCELLED = "order_cancelled", "order cancelled"

    class Channel(models.TextChoices):
        EMAIL = "email"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        DEAD = "dead"

    # No index of its own: notification_user_recent (user, -created_at) serves look-ups by user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    order_id = models.UUIDField()
    event_id = models.UUIDField(unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)  # the last failure, kept once sent
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)  # when a mail server accepted it
    attempts = models.PositiveIntegerField(default=0)
    # Due at (pending), or claimed until (sending: a mailer that died leaves it to the next one).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Retried until queued_at + EMAIL_RETRY_WINDOW_S; a replay queues it again.
    queued_at = models.DateTimeField(null=True, blank=True)
    correlation_id = models.UUIDField(null=True, blank=True)  # for the log lines about its e-mail
    order_placed_at = models.DateTimeField(null=True, blank=True)  # for the "notified" stage

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notification_user_recent"),
            models.Index(fields=["order_id"], name="notification_order"),
            # What a mailer claims next, and the backlog; the sent (nearly all rows) stay out of it.
            models.Index(
                fields=["status", "next_attempt_at"], name="notification_unsent", condition=~models.Q(status="sent")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.order_id} ({self.status})"
