"""Consumer groups and the housekeeping of streams: creating groups, inspecting them, trimming
what every group has acknowledged, removing consumers long idle. Part of the Redis Streams
adapter (eventbus.redis.streams.Transport has these methods).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from eventbus.redis.client import id_key, next_id, text, translated
from eventbus.redis.retry_store import MessageKey

__all__ = ["INCARNATION_KEY", "LAG_COUNT_LIMIT", "GroupAdmin", "GroupInfo"]

# A token written once into each Redis data set (see GroupAdmin.incarnation).
INCARNATION_KEY = "eventbus:incarnation"

# Where Redis does not report a group's lag, it is counted, up to this many entries (a script
# holds Redis while it counts: 100,000 entries take it some tens of milliseconds).
LAG_COUNT_LIMIT = 100_000
# The entries of KEYS[1] after the id ARGV[1] (exclusive), counted inside Redis up to ARGV[2]:
# only the count crosses the network. XRANGE's exclusive "(" start needs Redis 6.2.
_COUNT_AFTER = """
local n, start, limit = 0, '(' .. ARGV[1], tonumber(ARGV[2])
while n < limit do
  local page = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', math.min(1000, limit - n))
  if #page == 0 then break end
  n = n + #page
  start = '(' .. page[#page][1]
end
return n
"""


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A consumer group of one stream, as XINFO GROUPS reports it, with its lag (entries not
    yet delivered to the group) on every Redis version (GroupAdmin.groups)."""

    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    lag: int


class GroupAdmin:
    """The group operations of a Transport, which provides `client` and `key`."""

    client: redis.Redis

    def key(self, name: str) -> str:
        raise NotImplementedError

    def ensure_group(self, stream: str, group: str) -> bool:
        """Create the group (and the stream) reading from the start; True if it was created."""
        with translated():
            try:
                self.client.xgroup_create(self.key(stream), group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if str(exc).startswith("BUSYGROUP"):
                    return False
                raise
        return True

    def groups(self, stream: str) -> list[GroupInfo]:
        """The stream's consumer groups; none if the stream does not exist. Each group's lag is
        the one Redis reports (7.0 and later) or, where it reports none (Redis 6.2; Redis 7 after
        entries were deleted from the middle of the stream), the entries after the group's last
        delivered id, counted up to LAG_COUNT_LIMIT: the same figure on every version."""
        key = self.key(stream)
        with translated():
            try:
                rows = self.client.xinfo_groups(key)
            except redis.ResponseError as exc:
                if "no such key" in str(exc):
                    return []
                raise
            return [
                GroupInfo(
                    name=text(r["name"]),
                    consumers=r["consumers"],
                    pending=r["pending"],
                    last_delivered_id=text(r["last-delivered-id"]),
                    lag=self._lag(key, r),
                )
                for r in rows
            ]

    def _lag(self, key: str, row: dict) -> int:
        """One XINFO GROUPS row's lag: Redis's own figure when it gives one, else counted."""
        if row.get("lag") is not None:
            return row["lag"]
        return self.client.eval(_COUNT_AFTER, 1, key, text(row["last-delivered-id"]), LAG_COUNT_LIMIT)

    def consumers(self, stream: str, group: str) -> list[dict[str, object]]:
        """The group's consumers on the stream: name, pending count, idle milliseconds."""
        with translated():
            rows = self.client.xinfo_consumers(self.key(stream), group)
        return [{"name": text(r["name"]), "pending": r["pending"], "idle_ms": r["idle"]} for r in rows]

    def stream_length(self, stream: str) -> int:
        """How many entries the stream holds (XLEN)."""
        with translated():
            return self.client.xlen(self.key(stream))

    def trim_acknowledged(self, stream: str) -> int:
        """Trim entries every group has acknowledged, never one still pending or undelivered.

        XTRIM MINID with the oldest id any group still needs; `~` lets Redis trim whole nodes
        only, so it may keep a few more entries, never fewer. A stream without groups is left
        alone (nobody has said what it still needs).
        """
        key = self.key(stream)
        with translated():
            try:
                groups = self.client.xinfo_groups(key)
            except redis.ResponseError as exc:
                if "no such key" in str(exc):
                    return 0
                raise
            if not groups:
                return 0
            pipe = self.client.pipeline(transaction=False)
            for g in groups:
                pipe.xpending(key, g["name"])
            summaries = pipe.execute()
            needed = []
            for g, summary in zip(groups, summaries, strict=True):
                if summary["pending"]:
                    needed.append(text(summary["min"]))
                else:
                    needed.append(next_id(text(g["last-delivered-id"])))
            return self.client.xtrim(key, minid=min(needed, key=id_key), approximate=True)

    # --- what Redis remembers (eventbus.store.recovery) ---------------------------------------------

    def incarnation(self, candidate: str) -> str:
        """The token naming this Redis data set: `candidate` is stored if none is (a new or
        emptied Redis), and the stored one returned. A token that changes means Redis forgot."""
        key = self.key(INCARNATION_KEY)
        with translated():
            pipe = self.client.pipeline(transaction=True)
            pipe.set(key, candidate, nx=True)
            pipe.get(key)
            _, token = pipe.execute()
        return text(token)

    def last_ids(self, streams: Sequence[str]) -> dict[str, str]:
        """Each stream's last generated entry id (XINFO STREAM), "0-0" for a stream that does
        not exist. Ids only grow: one that went back means entries were lost."""
        out: dict[str, str] = {}
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for stream in streams:
                pipe.xinfo_stream(self.key(stream))
            replies = pipe.execute(raise_on_error=False)
        for stream, reply in zip(streams, replies, strict=True):
            if isinstance(reply, redis.ResponseError):
                if "no such key" not in str(reply):
                    raise reply
                out[stream] = "0-0"
            elif isinstance(reply, Exception):
                with translated():
                    raise reply
            else:
                out[stream] = text(reply["last-generated-id"])
        return out

    def delivered_up_to(self, stream: str, group: str) -> tuple[str, bool] | None:
        """How far the group has delivered and acknowledged the stream: (id, caught_up). Every
        entry up to `id` is handled (its last delivered id, or just before its oldest pending
        entry); caught_up: that is every entry the stream ever had (nothing pending, nothing
        undelivered). None when the group does not exist."""
        key = self.key(stream)
        with translated():
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.xinfo_stream(key)
                pipe.xinfo_groups(key)
                info, groups = pipe.execute()
            except redis.ResponseError as exc:
                if "no such key" in str(exc):
                    return None
                raise
            row = next((g for g in groups if text(g["name"]) == group), None)
            if row is None:
                return None
            delivered = text(row["last-delivered-id"])
            if not row["pending"]:
                return delivered, id_key(delivered) >= id_key(text(info["last-generated-id"]))
            summary = self.client.xpending(key, group)
        oldest = text(summary["min"]) if summary["pending"] else delivered
        return min(delivered, oldest, key=id_key), False

    def stream_keys(self, stream: str) -> list[str]:
        """The streams that exist under a logical stream's name: the stream itself and its
        partitions, whatever EVENTBUS_PARTITIONS was when they were written."""
        names = []
        with translated():
            for key in self.client.scan_iter(match=self.key(stream) + "*", count=1000, _type="stream"):
                name = text(key)[len(self.key("")) :]
                if name == stream or name.startswith(stream + ":{p"):
                    names.append(name)
        return sorted(names)

    def remove_idle_consumers(self, stream: str, group: str, *, idle_ms: int, keep: str = "") -> list[str]:
        """Delete consumers idle longer than idle_ms that hold no pending message (deleting one
        with pending entries would orphan them, so those are left for reclaim)."""
        removed = []
        with translated():
            try:
                rows = self.client.xinfo_consumers(self.key(stream), group)
            except redis.ResponseError:
                return []
            for row in rows:
                name = text(row["name"])
                if name != keep and row["pending"] == 0 and row["idle"] >= idle_ms:
                    self.client.xgroup_delconsumer(self.key(stream), group, name)
                    removed.append(name)
        return removed

    def delivery_counts(self, group: str, messages: Sequence[MessageKey]) -> dict[MessageKey, int]:
        """How many times each pending message has been delivered: XPENDING over the range of
        ids of each stream, all streams in one round trip."""
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id in messages:
            by_stream.setdefault(stream, []).append(entry_id)
        if not by_stream:
            return {}
        with translated():
            pipe = self.client.pipeline(transaction=False)
            for stream, ids in by_stream.items():
                ordered = sorted(ids, key=id_key)
                pipe.xpending_range(
                    self.key(stream), group, min=ordered[0], max=ordered[-1], count=max(len(ids) * 2, 100)
                )
            replies = pipe.execute()
        wanted = set(messages)
        counts = {}
        for stream, rows in zip(by_stream, replies, strict=True):
            for r in rows:
                key = (stream, text(r["message_id"]))
                if key in wanted:
                    counts[key] = r["times_delivered"]
        return counts
