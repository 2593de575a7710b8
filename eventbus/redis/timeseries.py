"""Figures over time for the operations console: counts per 10-second bucket in Redis (events
handled per group and outcome, stage latencies as histogram buckets), kept an hour.

A process adds to a local buffer as it works (no I/O) and flushes it with its heartbeat, one
pipelined round trip every couple of seconds, so the figures cost the pipeline nothing per
message. Readers (the console) get the buckets of the last minutes and derive rates and
percentiles from them.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Sequence

from eventbus.redis.transport import Transport

__all__ = ["BUCKET_S", "KEEP_S", "LATENCY_BOUNDS", "Recorder", "quantile", "read", "recorder"]

BUCKET_S = 10
KEEP_S = 3600
# Upper bounds of the latency histogram's buckets, in seconds (the last one catches the rest).
LATENCY_BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, float("inf"))


def _key(series: str, bucket: int) -> str:
    # One hash slot for all of it on a Redis Cluster (the {...} tag): one pipeline reads it all.
    return f"{{eventbus:timeseries}}:{series}:{bucket}"


def _bucket(at: float) -> int:
    return int(at // BUCKET_S) * BUCKET_S


class Recorder:
    """A process's figures not yet written to Redis. Thread-safe; `add` and `observe` do no I/O."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, series: str, field: str, n: int = 1, *, at: float | None = None) -> None:
        """Count n of `field` in `series` (e.g. series "handled:inventory", field "ok")."""
        if n:
            with self._lock:
                self._pending[(series, _bucket(at or time.time()))][field] += n

    def observe(self, series: str, seconds: float, *, at: float | None = None) -> None:
        """Count a duration in `series`'s histogram (field: its bucket's upper bound)."""
        bound = LATENCY_BOUNDS[min(bisect.bisect_left(LATENCY_BOUNDS, seconds), len(LATENCY_BOUNDS) - 1)]
        self.add(series, str(bound), at=at)

    def flush(self, transport: Transport) -> None:
        """Write what was counted since the last flush (one round trip); on failure it is kept
        for the next one."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        if not pending:
            return
        try:
            transport.hash_increments({_key(s, b): dict(fields) for (s, b), fields in pending.items()}, ttl_s=KEEP_S)
        except Exception:
            with self._lock:  # put it back: counts are only ever added
                for key, fields in pending.items():
                    for field, n in fields.items():
                        self._pending[key][field] += n
            raise


recorder = Recorder()


def read(
    transport: Transport, series: Sequence[str], *, seconds: int = 900
) -> dict[str, list[tuple[int, dict[str, int]]]]:
    """The buckets of the last `seconds` of each series, oldest first: (bucket start, counts),
    empty buckets included as {}."""
    now = time.time()
    buckets = list(range(_bucket(now - seconds), _bucket(now) + 1, BUCKET_S))
    keys = [_key(s, b) for s in series for b in buckets]
    values = transport.hashes(keys) if keys else []
    out: dict[str, list[tuple[int, dict[str, int]]]] = {}
    for i, s in enumerate(series):
        chunk = values[i * len(buckets) : (i + 1) * len(buckets)]
        out[s] = list(zip(buckets, chunk, strict=True))
    return out


def quantile(histogram: dict[str, int], q: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram (field: upper bound, value: count), as the
    upper bound of the bucket it falls in; None for an empty histogram."""
    counts = sorted(((float(bound), n) for bound, n in histogram.items() if n), key=lambda item: item[0])
    total = sum(n for _, n in counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for bound, n in counts:
        seen += n
        if seen >= rank:
            return bound
    return counts[-1][0]
