"""Per-token request limits per minute and per day (fixed windows) and their response headers."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core.config import Plan

_MINUTE = 60
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against a token's plan."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the binding window resets
    retry_after_s: int  # 0 when allowed

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` and ``X-RateLimit-*`` headers for this decision."""
        limit, remaining, reset = str(self.limit), str(self.remaining), str(self.reset_s)
        return {"RateLimit-Limit": limit, "RateLimit-Remaining": remaining,
                "RateLimit-Reset": reset, "X-RateLimit-Limit": limit,
                "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset}


@dataclass(slots=True)
class _Window:
    start: int = -1
    count: int = 0


@dataclass(slots=True)
class _Counters:
    minute: _Window = field(default_factory=_Window)
    day: _Window = field(default_factory=_Window)


class RateLimiter:
    """Counts requests per token key; pure apart from its counters (``now_s`` is passed in)."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Counters] = {}

    def hit(self, key: str, plan: Plan, now_s: float) -> Decision:
        """Count one request for ``key`` at unix time ``now_s`` and decide whether it may pass."""
        counters = self._tokens.get(key)
        if counters is None:
            counters = self._tokens[key] = _Counters()
        now = int(now_s)
        minute, day = counters.minute, counters.day
        minute_start = now - now % _MINUTE
        if minute.start != minute_start:
            minute.start, minute.count = minute_start, 0
        day_start = now - now % _DAY
        if day.start != day_start:
            day.start, day.count = day_start, 0
        minute_reset = minute_start + _MINUTE - now
        day_reset = day_start + _DAY - now
        if day.count >= plan.per_day:  # the day's budget binds longest
            return Decision(False, plan.per_day, 0, day_reset, day_reset)
        if minute.count >= plan.per_minute:
            return Decision(False, plan.per_minute, 0, minute_reset, minute_reset)
        minute.count += 1
        day.count += 1
        # Report the window closest to running out.
        minute_left = plan.per_minute - minute.count
        day_left = plan.per_day - day.count
        if day_left < minute_left:
            return Decision(True, plan.per_day, day_left, day_reset, 0)
        return Decision(True, plan.per_minute, minute_left, minute_reset, 0)
