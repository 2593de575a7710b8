"""E-mail metrics: counters the mailer keeps as it sends, and gauges read from the database when
scraped (the web's /metrics registers EmailCollector beside the pipeline's gauges)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["EMAILS_FAILED", "EMAILS_SENT", "EmailCollector"]

EMAILS_SENT = Counter("eventshop_emails_sent", "E-mails a mail server accepted.")
EMAILS_FAILED = Counter(
    "eventshop_emails_failed",
    "Tries that did not deliver an e-mail, by reason (connection: no connection or it broke, timeout: no answer "
    "within EMAIL_TIMEOUT, temporary: a 4xx answer, permanent: a 5xx answer, no_address, window: not accepted "
    "within EMAIL_RETRY_WINDOW_S, other) and outcome (retry: tried again later, dead: a dead letter).",
    ["reason", "outcome"],
)


class EmailCollector(Collector):
    """Gauges: e-mails waiting to be accepted, the age of the oldest, and dead ones."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import Error as DatabaseError

        from notifications.selectors import email_backlog

        try:
            backlog = email_backlog()
        except DatabaseError:  # the scrape answers without them; eventshop_scrape_source_up says why
            return
        waiting = GaugeMetricFamily("eventshop_emails_waiting", "E-mails not yet accepted by a mail server.")
        waiting.add_metric([], backlog.waiting)
        oldest = GaugeMetricFamily(
            "eventshop_emails_oldest_waiting_age_seconds", "Age of the oldest e-mail not yet accepted (0 when none)."
        )
        oldest.add_metric([], backlog.oldest_age_s)
        dead = GaugeMetricFamily("eventshop_emails_dead", "E-mails given up on (dead letters), until replayed.")
        dead.add_metric([], backlog.dead)
        yield from (waiting, oldest, dead)
