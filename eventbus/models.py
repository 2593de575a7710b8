"""The event bus's tables: the outbox (events waiting for the relay), the inbox (events a group
has already handled) and the dead letters (messages a group gave up on)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class OutboxEvent(models.Model):
    """An event written in the same transaction as the change that caused it.

    `body` is the wire envelope exactly as the relay publishes it. The relay deletes a row once
    it is on the stream, unless EVENTBUS["OUTBOX_RETENTION_S"] asks to keep published rows (with
    published_at set) that long for inspection.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=100)
    stream = models.CharField(max_length=100)
    aggregate_type = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    correlation_id = models.UUIDField()
    body = models.TextField()
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "outbox event"
        indexes = [
            # The relay's claim query reads only this small partial index.
            models.Index(fields=["id"], condition=Q(published_at__isnull=True), name="outbox_unpublished"),
            # Only rows kept after publishing (OUTBOX_RETENTION_S) are indexed for their purge:
            # the hot insert path pays for no other index.
            models.Index(fields=["published_at"], condition=Q(published_at__isnull=False), name="outbox_published_at"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id}"


class ProcessedEvent(models.Model):
    """The inbox: one row per event a consumer group has applied, written in the same
    transaction as the effect. The unique constraint is what makes redelivery harmless.

    It also records what an operator following an order needs and the consumer knew when it
    claimed the event (same insert, no extra round trip): the event's type, aggregate and
    correlation, the stream entry, the consumer, the attempt, and the batch it was applied in
    (ConsumerBatch: when, how long). Kept INBOX_RETENTION_S, so an order's timeline lasts that long."""

    id = models.BigAutoField(primary_key=True)
    consumer_group = models.CharField(max_length=100)
    event_id = models.UUIDField()
    processed_at = models.DateTimeField()
    event_type = models.CharField(max_length=100, blank=True, default="")
    occurred_at = models.DateTimeField(null=True, blank=True)
    aggregate_id = models.CharField(max_length=64, blank=True, default="")
    correlation_id = models.UUIDField(null=True, blank=True)
    stream = models.CharField(max_length=200, blank=True, default="")
    message_id = models.CharField(max_length=40, blank=True, default="")
    consumer = models.CharField(max_length=200, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    batch_id = models.UUIDField(null=True, blank=True)

    class Meta:
        verbose_name = "processed event"
        constraints = [
            models.UniqueConstraint(fields=["consumer_group", "event_id"], name="inbox_once_per_group"),
        ]
        indexes = [
            models.Index(fields=["processed_at"], name="inbox_processed_at"),
            models.Index(fields=["aggregate_id"], name="inbox_aggregate"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer_group}:{self.event_id}"


class ConsumerBatch(models.Model):
    """One batch a consumer applied in one transaction: when it started, how long it took and how
    many messages it held. Written at the end of that transaction, so it exists if and only if
    the batch's effects committed; the inbox rows name it."""

    id = models.UUIDField(primary_key=True)
    consumer_group = models.CharField(max_length=100)
    consumer = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    size = models.PositiveIntegerField()

    class Meta:
        verbose_name = "consumer batch"
        verbose_name_plural = "consumer batches"
        indexes = [models.Index(fields=["started_at"], name="consumer_batch_started_at")]

    def __str__(self) -> str:
        return f"{self.consumer_group} batch of {self.size} by {self.consumer}"


class DeadLetter(models.Model):
    """A message a consumer group could not process, parked with everything needed to see why
    and to replay it to that group."""

    class Status(models.TextChoices):
        DEAD = "dead", "dead"
        REPLAYED = "replayed", "replayed (waiting for the consumer)"
        RESOLVED = "resolved", "resolved"
        DISCARDED = "discarded", "discarded"

    id = models.BigAutoField(primary_key=True)
    consumer_group = models.CharField(max_length=100)
    stream = models.CharField(max_length=200)
    message_id = models.CharField(max_length=40)
    event_id = models.UUIDField(null=True, blank=True)
    event_type = models.CharField(max_length=100, blank=True)
    fields = models.JSONField(help_text="The raw stream entry, field by field.")
    error = models.TextField()
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField()
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DEAD)
    replay_count = models.PositiveIntegerField(default=0)
    replayed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "dead letter"
        ordering = ["-last_failed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["consumer_group", "stream", "message_id"], name="deadletter_once_per_message"
            ),
        ]
        indexes = [models.Index(fields=["status", "consumer_group"], name="deadletter_status_group")]

    def __str__(self) -> str:
        return f"{self.consumer_group} {self.event_type or '?'} {self.message_id}"


class BusMemory(models.Model):
    """What the relay last verified of the Redis data set under one key prefix: the token it
    wrote into it, when it last checked, each stream's last entry id and each group's streams,
    and the time before which every group had handled every event (`settled_before`). If Redis
    forgets (restarted without persistence, flushed, failed over to a replica that missed
    writes), the token, an id or a group no longer matches, and the relay publishes again every
    kept outbox row published since `settled_before` (eventbus.store.recovery)."""

    key_prefix = models.CharField(max_length=200, primary_key=True, blank=True)
    token = models.CharField(max_length=64)
    checked_at = models.DateTimeField()
    settled_before = models.DateTimeField()
    seen = models.JSONField(default=dict, help_text="{'ids': {stream: last entry id}, 'groups': ['group@stream']}")

    class Meta:
        verbose_name = "bus memory"
        verbose_name_plural = "bus memory"

    def __str__(self) -> str:
        return (
            f"Redis data set {self.token} (key prefix {self.key_prefix!r}) checked {self.checked_at:%Y-%m-%d %H:%M:%S}"
        )
