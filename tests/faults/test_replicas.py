"""With PUBLISH_WAIT_REPLICAS, an event counts as published only once a replica has it (WAIT):
while the replica does not confirm, the outbox rows stay unpublished and are published once it
does, so a primary that fails over right after acknowledging an XADD cannot take the event
with it. A private primary and replica (redis-server --replicaof) on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction

from eventbus.models import OutboxEvent
from eventbus.redis.transport import Transport, TransportUnavailable, get_transport, reset_transport
from eventbus.runtime.relay import Relay
from eventbus.store import outbox
from orders.events import OrderConfirmed
from tests.eventbus.test_recovery import confirmed
from tests.processes import RedisServer, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def replicated(tmp_path: Path, settings: object, key_prefix: str) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary")
    replica = RedisServer(tmp_path / "replica", replica_of=primary.port)
    for server in (primary, replica):
        server.directory.mkdir()
        server.start()
    shared_url = settings.REDIS_URL  # type: ignore[attr-defined]
    settings.REDIS_URL = primary.url  # type: ignore[attr-defined]
    settings.EVENTBUS = {**settings.EVENTBUS, "WAIT_REPLICAS": 1, "WAIT_TIMEOUT_MS": 200, "RELAY_GRACE_S": 0}  # type: ignore[attr-defined]
    reset_transport()
    info = get_transport().client.info
    wait_until(lambda: info("replication")["connected_slaves"] == 1, timeout=10, what="the replica to connect")
    yield primary, replica
    replica.resume()
    settings.REDIS_URL = shared_url  # type: ignore[attr-defined]
    reset_transport()
    replica.kill()  # nothing of theirs is needed afterwards
    primary.kill()


def record(*events: OrderConfirmed) -> None:
    with transaction.atomic():
        for e in events:
            outbox.record(e, aggregate_id=e.order_id)


def unpublished() -> int:
    return OutboxEvent.objects.filter(published_at__isnull=True).count()


def test_events_a_replica_confirmed_are_published_and_on_the_replica(replicated):
    _, replica = replicated
    record(confirmed(), confirmed())

    Relay(transport=get_transport()).run(once=True)

    assert unpublished() == 0
    on_replica = Transport(replica.url, prefix=get_transport().prefix)
    assert on_replica.stream_length("orders") == 2
    on_replica.close()


def test_while_no_replica_confirms_the_rows_stay_unpublished_and_go_out_once_it_does(replicated, settings):
    _, replica = replicated
    replica.pause()
    record(confirmed(), confirmed())  # published on commit, but WAIT times out: not marked
    relay = Relay(transport=get_transport())

    with pytest.raises(TransportUnavailable, match="WAIT: 0 of the 1 replica"):
        relay.publish_batch()
    assert unpublished() == 2, "nothing is marked published that only the primary holds"

    replica.resume()
    wait_until(lambda: relay.publish_batch() or unpublished() == 0, timeout=10, what="the rows to be published")
    assert unpublished() == 0
