"""Rate limits for the API and the sign-in forms, counted in Redis through Django's cache so
every web worker and host shares them.

Counts are fixed windows (`60/min`: at most 60 in each clock minute), each one an atomic
SET NX EX + INCR, several in one round trip. While Redis is unreachable or slow (the cache
client gives up after 100 ms), the API's limits fail open: requests are served unthrottled, a
breaker stops asking Redis for a few seconds at a time, and one line is logged when the outage
starts and one when it ends. Taking orders with Redis down matters more than rate limits.
Sign-in fails closed instead (429 with Retry-After until Redis answers): unlimited password
guessing is worth more to an attacker than a short wait costs a person.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import caches
from django.dispatch import receiver
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from config.cache import CacheUnavailable

__all__ = [
    "ApiThrottle", "Rate", "breaker", "client_ip", "login_attempt_failed", "login_blocked_for", "order_waits",
    "parse_rate",
]  # fmt: skip

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400,
          "day": 86400}  # fmt: skip
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")


@dataclass(frozen=True)
class Rate:
    count: int
    window_s: int

    def __str__(self) -> str:
        return f"{self.count}/{self.window_s}s"


@functools.lru_cache(maxsize=64)
def parse_rate(text: str) -> tuple[Rate, ...]:
    """`60/min`, `10/10s`, or several separated by commas (`20/10s,60/min`: all must hold)."""
    rates = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _RATE.fullmatch(part.lower())
        if not match or match.group(3) not in _UNITS:
            raise ValueError(f"{part!r} is not a rate: write it as N/unit, e.g. 60/min or 10/10s")
        count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
        rates.append(Rate(count, multiple * _UNITS[unit]))
    return tuple(rates)


def client_ip(request: HttpRequest) -> str:
    """The client's address: the peer's, or, behind NUM_PROXIES trusted proxies, the address
    the outermost of them saw (the N-th from the right in X-Forwarded-For). A client can put
    anything in X-Forwarded-For, so it is only read when proxies are configured."""
    proxies = settings.NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "")


class _Breaker:
    """Fail open while Redis does not answer: stop asking it for `pause_s` after a failure, and
    log once when the outage starts and once when it ends."""

    def __init__(self, pause_s: float = 5.0) -> None:
        self.pause_s = pause_s
        self._open_until = 0.0
        self._down = False
        self._lock = threading.Lock()

    def count(self, windows: Sequence[tuple[str, int]], read: Sequence[str] = ()) -> tuple[list[int], list[int]] | None:
        if time.monotonic() < self._open_until:
            return None
        try:
            result = caches[settings.THROTTLE_CACHE].count(windows, read=read)
        except CacheUnavailable as exc:
            with self._lock:
                self._open_until = time.monotonic() + self.pause_s
                if not self._down:
                    self._down = True
                    log.error(
                        "rate limits are off: Redis does not answer (%s); requests are served unthrottled "
                        "until it does (checked every %gs)", exc, self.pause_s,
                    )  # fmt: skip
            return None
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    log.warning("rate limits are back on: Redis answers again")
        return result

    def is_open(self) -> bool:
        """Whether Redis is being left alone after a failure (the limits are off, sign-in is paused)."""
        return time.monotonic() < self._open_until

    def retry_after(self) -> int:
        """Whole seconds until the breaker asks Redis again (at least 1)."""
        return max(1, int(self._open_until - time.monotonic() + 0.999))

    def reset(self) -> None:
        self._open_until = 0.0
        self._down = False


breaker = _Breaker()


def _window_key(name: str, rate: Rate, now: float) -> tuple[str, int]:
    bucket = int(now // rate.window_s)
    return f"throttle:{name}:{rate.window_s}:{bucket}", rate.window_s


def _seconds_left(rate: Rate, now: float) -> int:
    return max(1, int(rate.window_s - now % rate.window_s + 0.999))


class ApiThrottle(BaseThrottle):
    """The API's rate limits, checked in one round trip per request:

    - anonymous requests, per client address: THROTTLE_RATES["anon"];
    - writes (POST, PUT, PATCH, DELETE) of a signed-in user, per user: THROTTLE_RATES["writes"];
    - a view's own scope for an action (`throttle_scopes = {"create": "orders"}`), per user.

    The token endpoint has its own limits on failed sign-ins (see login_blocked_for)."""

    def allow_request(self, request: Any, view: Any) -> bool:
        self._wait: int | None = None
        if not settings.THROTTLES_ENABLED:
            return True
        rules = self._rules(request, view)
        if not rules:
            return True
        now = time.time()
        windows, rates = [], []
        for name, rate_names in rules:
            for rate in rate_names:
                windows.append(_window_key(name, rate, now))
                rates.append(rate)
        counted = breaker.count(windows)
        if counted is None:
            return True
        over = [rate for rate, n in zip(rates, counted[0], strict=True) if n > rate.count]
        if over:
            self._wait = max(_seconds_left(rate, now) for rate in over)
            return False
        return True

    def _rules(self, request: Any, view: Any) -> list[tuple[str, tuple[Rate, ...]]]:
        rates = settings.THROTTLE_RATES
        user = request.user
        if not (user and user.is_authenticated):
            return [(f"anon:{client_ip(request)}", parse_rate(rates["anon"]))]
        rules = []
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            rules.append((f"writes:{user.pk}", parse_rate(rates["writes"])))
        scope = getattr(view, "throttle_scopes", {}).get(getattr(view, "action", None))
        if scope:
            rules.append((f"{scope}:{user.pk}", parse_rate(rates[scope])))
        return rules

    def wait(self) -> float | None:
        return self._wait


def order_waits(user_ids: Sequence[int]) -> list[int | None]:
    """ApiThrottle's limits on placing an order (writes, and the orders scope of
    orders.api.views.OrderViewSet), on the same counters, for the orders of several users in one
    round trip (the web's order desk, orders.desk): per order, the seconds its client must wait,
    or None if it may be placed. Two orders of one user count two."""
    waits: list[int | None] = [None] * len(user_ids)
    if not settings.THROTTLES_ENABLED or not user_ids:
        return waits
    now = time.time()
    scopes = [(scope, parse_rate(settings.THROTTLE_RATES[scope])) for scope in ("writes", "orders")]
    windows, owners = [], []
    for i, user_id in enumerate(user_ids):
        for scope, rates in scopes:
            for rate in rates:
                windows.append(_window_key(f"{scope}:{user_id}", rate, now))
                owners.append((i, rate))
    counted = breaker.count(windows)
    if counted is None:
        return waits
    for (i, rate), n in zip(owners, counted[0], strict=True):
        if n > rate.count:
            waits[i] = max(waits[i] or 0, _seconds_left(rate, now))
    return waits


# --- sign-in ---------------------------------------------------------------------------------------


def _login_limits(request: HttpRequest, username: str) -> list[tuple[str, tuple[Rate, ...]]]:
    """Failed sign-ins are counted three ways, so that no one address can lock an owner out:

    - per address and username, THROTTLE_RATES["login_failures"]: the attacker's own address is
      blocked for that username, the owner's is not;
    - per address, any username, THROTTLE_RATES["login_failures_address"]: one address trying
      many usernames (password spraying);
    - per username, any address, THROTTLE_RATES["login_failures_user"]: slower and larger, for
      guesses spread over many addresses; an address reaches it alone only past its own hourly
      limit above, so locking an owner out takes several addresses, for an hour at most."""
    address, user = client_ip(request), username.strip().lower()[:150]
    rates = settings.THROTTLE_RATES
    return [
        (f"login-failed:pair:{address}:{user}", parse_rate(rates["login_failures"])),
        (f"login-failed:ip:{address}", parse_rate(rates["login_failures_address"])),
        (f"login-failed:user:{user}", parse_rate(rates["login_failures_user"])),
    ]


def login_blocked_for(request: HttpRequest, username: str) -> int | None:
    """Seconds the client must wait before trying to sign in again, or None if it may try now.

    Blocked while any count of failed attempts of `_login_limits` is at its limit (a success
    resets nothing: another address's failures on the same username still count). Every attempt
    from one address also counts against the generous THROTTLE_RATES["login"], so an office or a
    test rig sharing an address is not held up. Fails closed: while Redis does not answer, every
    attempt waits for it (the breaker's pause)."""
    if not settings.THROTTLES_ENABLED:
        return None
    now = time.time()
    attempts = parse_rate(settings.THROTTLE_RATES["login"])
    attempt_windows = [_window_key(f"login:{client_ip(request)}", rate, now) for rate in attempts]
    failures = [(key, rate) for key, rates in _login_limits(request, username) for rate in rates]
    counted = breaker.count(attempt_windows, read=[_window_key(key, rate, now)[0] for key, rate in failures])
    if counted is None:
        return breaker.retry_after()
    made, failed = counted
    waits = [_seconds_left(rate, now) for rate, n in zip(attempts, made, strict=True) if n > rate.count]
    waits += [_seconds_left(rate, now) for (_, rate), n in zip(failures, failed, strict=True) if n >= rate.count]
    return max(waits) if waits else None


def login_attempt_failed(request: HttpRequest, username: str) -> None:
    """Count a failed sign-in (see _login_limits)."""
    if not settings.THROTTLES_ENABLED:
        return
    now = time.time()
    breaker.count([_window_key(key, rate, now) for key, rates in _login_limits(request, username) for rate in rates])


@receiver(user_login_failed, dispatch_uid="config.throttling.count_failed_login")
def _count_failed_login(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kw: Any
) -> None:
    """Every failed authenticate() counts, whichever form it came from (API token, admin)."""
    if request is not None:
        login_attempt_failed(request, str(credentials.get("username", "")))
