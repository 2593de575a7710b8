"""The retry policy: exponential backoff with full jitter, configured per consumer group."""

from __future__ import annotations

import pytest

from eventbus.runtime.consumer import RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "bound"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (12, 1.0)],
)
def test_retry_delay_is_drawn_uniformly_below_base_times_two_to_the_attempt_capped(attempt, bound):
    policy = RetryPolicy(base_s=0.1, cap_s=1.0, max_attempts=20)

    delays = [policy.delay(attempt) for _ in range(500)]

    assert all(0 <= d <= bound for d in delays)
    assert len(set(delays)) > 450, "every delay is drawn afresh (jitter)"
    assert min(delays) < 0.2 * bound, "full jitter reaches down to zero"
    assert max(delays) > 0.8 * bound, "and up to the exponential bound"


@pytest.mark.eventbus(
    RETRY={
        "default": {"base_s": 0.2, "cap_s": 5.0, "max_attempts": 4},
        "inventory": {"cap_s": 60.0, "max_attempts": 9},
    }
)
def test_a_groups_retry_policy_overrides_the_default_entry_by_entry(bus_settings):
    assert RetryPolicy.for_group("inventory") == RetryPolicy(base_s=0.2, cap_s=60.0, max_attempts=9)
    assert RetryPolicy.for_group("notifications") == RetryPolicy(base_s=0.2, cap_s=5.0, max_attempts=4)
