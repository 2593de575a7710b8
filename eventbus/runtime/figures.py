"""What a consumer counts about each batch once it committed: the Prometheus metrics, the
console's time buckets (eventbus.redis.timeseries) and, with DEBUG, a log line per message carrying
the message's fields. No I/O: the metrics live in memory (or their multiprocess files) and the
time buckets are written with the next heartbeat."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from eventbus.messages.events import Envelope
from eventbus.redis.streams import Message
from eventbus.redis.timeseries import recorder
from eventbus.runtime.metrics import BATCH_SIZE, EVENTS_HANDLED, HANDLER_DURATION
from eventbus.store.failures import message_fields

__all__ = ["Stats", "record_batch"]

log = logging.getLogger("eventbus.runtime.batch")


@dataclass
class Stats:
    """What a consumer did since it started (its log line on stopping, `--once`'s summary)."""

    processed: int = 0
    duplicates: int = 0
    skipped: int = 0
    retried: int = 0
    waiting: int = 0  # deliveries of a newer event version put back to wait for an upgrade
    dead: int = 0
    reclaimed: int = 0
    last_batch_at: float | None = None  # when the last batch finished (epoch seconds)
    last_batch_size: int = 0


def record_batch(
    group: str,
    size: int,
    done: Sequence[tuple[Message, Envelope, int, str]],
    failed: Counter[tuple[str, str]],
    timed: Sequence[tuple[str, float, int]],
    elapsed: float,
) -> None:
    """Count one batch of `size` messages: `done` is (message, envelope, attempt, "ok" or
    "duplicate") per message applied or found applied before; `failed` counts (event type,
    "retry" or "dead"); `timed` is (event type, seconds per message, messages) per handler call;
    `elapsed` the whole batch's time."""
    BATCH_SIZE.labels(group).observe(size)
    outcomes = Counter((envelope.type, outcome) for _, envelope, _, outcome in done) + failed
    handled: Counter[str] = Counter()
    for (type_, outcome), n in outcomes.items():
        EVENTS_HANDLED.labels(group, type_, outcome).inc(n)
        handled[outcome] += n
    for outcome, n in handled.items():
        recorder.add(f"handled:{group}", outcome, n)
    for type_, per_message, n in timed:
        histogram = HANDLER_DURATION.labels(group, type_)
        for _ in range(n):
            histogram.observe(per_message)
    if done and log.isEnabledFor(logging.DEBUG):
        duration_ms = round(1000 * elapsed / len(done), 3)
        for message, envelope, attempt, outcome in done:
            log.debug(
                "group %s: %s %s/%s %s", group, envelope.type, message.stream, message.id, outcome,
                extra={**message_fields(message, envelope, attempt), "duration_ms": duration_ms},
            )  # fmt: skip
