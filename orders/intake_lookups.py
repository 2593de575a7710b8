"""What the order intake (orders.intake) looks up without a database round trip per request:
who a token belongs to, read off the event loop, on the order desk's own connections (its
look-ups never queue for a connection behind the requests Django serves), and batched: however
many requests arrive with unknown tokens, each batch of them is one query."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from rest_framework.authtoken.models import Token

from config.auth import TokenMemory

__all__ = ["Tokens"]

log = logging.getLogger(__name__)

Query = Callable[..., Awaitable[Any]]  # query(fn, *args): fn(*args) in a thread with a connection


class Tokens:
    """Token key -> the id of its active user, remembered as the API's CachedTokenAuthentication
    remembers its users (config.auth.TokenMemory). `query` runs a look-up (orders.desk.Desk.query)."""

    def __init__(self, query: Query) -> None:
        self._query = query
        self._known: TokenMemory[int] = TokenMemory()
        self._asked: dict[str, asyncio.Future[int | None]] = {}
        self._batch: asyncio.Task[None] | None = None

    async def user_id(self, key: str) -> int | None:
        """The id of the token's active user, None if there is none; TimeoutError if its look-up
        took longer than an order may wait (INTAKE_DEADLINE_S), DatabaseError if it failed."""
        known = self._known.get(key)
        if known is not None:
            return known
        future = self._asked.get(key)
        if future is None:
            future = self._asked[key] = asyncio.get_running_loop().create_future()
            if self._batch is None or self._batch.done():
                self._batch = asyncio.create_task(self._look_up())
        return await asyncio.shield(future)

    async def _look_up(self) -> None:
        while self._asked:
            asked, self._asked = self._asked, {}
            try:
                # One timer for the batch, not one per request: with one per request a spike of
                # new customers had a quarter fewer orders taken (docs/benchmarks.md).
                found = dict(await asyncio.wait_for(self._query(_token_users, list(asked)), settings.INTAKE_DEADLINE_S))
            except (DatabaseError, TimeoutError) as exc:  # every request of the batch hears it
                for future in asked.values():
                    if not future.done():
                        future.set_exception(exc)
                continue
            for key, future in asked.items():
                user_id = found.get(key)
                if user_id is not None:
                    self._known.keep(key, user_id)
                if not future.done():
                    future.set_result(user_id)


def _token_users(keys: Iterable[str]) -> list[tuple[str, int]]:
    return list(Token.objects.filter(key__in=list(keys), user__is_active=True).values_list("key", "user_id"))
