"""Heartbeats: every relay and consumer process says, in Redis, that it is alive and what it is
doing (host, pid, groups, streams, when it started and last finished a batch, its counts since
start). A beat expires on its own: a process that stops deletes its beat at once, one that is
killed or hangs disappears when its beat expires. `manage.py status`, /readyz, the metrics and
the operations console read them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field

from eventbus.redis.transport import Transport

__all__ = ["BEAT_INTERVAL_S", "BEAT_TTL_S", "Heartbeat", "forget", "live_processes", "process_name", "send"]

# A process beats this often (between batches, and from its wait), and its beat lives this long:
# a killed process is gone from `status` within BEAT_TTL_S.
BEAT_INTERVAL_S = 2.0
BEAT_TTL_S = 10

# All beats share one hash slot on a Redis Cluster (the {...} tag), so one MGET reads them all.
_INDEX = "{eventbus:heartbeats}:index"


def process_name(prefix: str = "") -> str:
    """A name no other live process has: host, pid and a random part. Host and pid alone are not
    unique in containers, where every process is PID 1 and, with host networking, shares the
    host's name; two processes sharing a name share a beat (so `status` misses one) and, in
    one group, a consumer's pending entries. The name is new at each start, so what a previous
    run left pending is reclaimed after CLAIM_MIN_IDLE_MS."""
    return f"{prefix}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _key(name: str) -> str:
    return f"{{eventbus:heartbeats}}:process:{name}"


@dataclass
class Heartbeat:
    """What one process says about itself."""

    role: str  # "consumer" or "relay"
    name: str
    groups: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    last_batch_at: float | None = None
    batch_size: int = 0  # the batch in hand, 0 between batches
    processed: int = 0
    duplicates: int = 0
    retries: int = 0
    dead: int = 0
    published: int = 0
    partitions: list[str] = field(default_factory=list)
    beat_at: float = 0.0

    @property
    def started(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.started_at, dt.UTC)


def send(transport: Transport, beat: Heartbeat) -> None:
    """Say that this process is alive, for BEAT_TTL_S seconds (one round trip)."""
    beat.beat_at = time.time()
    transport.heartbeat_set(
        _INDEX, _key(beat.name), beat.name, json.dumps(asdict(beat)), ttl_s=BEAT_TTL_S, now=beat.beat_at
    )


def forget(transport: Transport, name: str) -> None:
    """This process stops: its beat goes at once."""
    transport.heartbeat_delete(_INDEX, _key(name), name)


def live_processes(transport: Transport) -> list[Heartbeat]:
    """Every process whose beat has not expired, by role and name."""
    beats = []
    for raw in transport.heartbeats(_INDEX, _key, now=time.time()):
        try:
            data = json.loads(raw)
            beats.append(Heartbeat(**data))
        except (ValueError, TypeError):
            continue  # a beat from another version of this code: ignore it rather than fail
    return sorted(beats, key=lambda b: (b.role, b.name))
