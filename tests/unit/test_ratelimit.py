"""Per-token fixed-window limits and their headers."""

from __future__ import annotations

from gateway.core.config import Plan
from gateway.web.ratelimit import RateLimiter

T0 = 1_700_000_080.0  # 40 s into a minute


def test_allows_up_to_the_minute_limit_then_blocks_until_the_window_resets() -> None:
    limiter = RateLimiter()
    plan = Plan(per_minute=3, per_day=100)
    decisions = [limiter.hit("tok", plan, T0 + i) for i in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    blocked = decisions[3]
    assert blocked.retry_after_s == 60 - 43
    assert blocked.headers()["RateLimit-Remaining"] == "0"
    assert limiter.hit("tok", plan, T0 + 20).allowed  # next minute


def test_day_limit_binds_when_tighter() -> None:
    limiter = RateLimiter()
    plan = Plan(per_minute=100, per_day=2)
    assert limiter.hit("tok", plan, T0).allowed
    assert limiter.hit("tok", plan, T0 + 1).allowed
    blocked = limiter.hit("tok", plan, T0 + 61)
    assert not blocked.allowed
    assert blocked.limit == 2
    assert blocked.retry_after_s > 60


def test_tokens_are_counted_separately_and_headers_come_in_both_spellings() -> None:
    limiter = RateLimiter()
    plan = Plan(per_minute=1, per_day=10)
    assert limiter.hit("a", plan, T0).allowed
    assert limiter.hit("b", plan, T0).allowed
    headers = limiter.hit("a", plan, T0).headers()
    for name in ("Limit", "Remaining", "Reset"):
        assert f"RateLimit-{name}" in headers
        assert f"X-RateLimit-{name}" in headers
