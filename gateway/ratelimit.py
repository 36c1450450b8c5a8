"""Per-token request limits per minute and per day (fixed windows) and their response headers."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config import Plan

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
        values = {"Limit": str(self.limit), "Remaining": str(self.remaining),
                  "Reset": str(self.reset_s)}
        out = {f"RateLimit-{k}": v for k, v in values.items()}
        out.update({f"X-RateLimit-{k}": v for k, v in values.items()})
        return out


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
        counters = self._tokens.setdefault(key, _Counters())
        now = int(now_s)
        checks = []
        for window, size, limit in ((counters.minute, _MINUTE, plan.per_minute),
                                    (counters.day, _DAY, plan.per_day)):
            start = now - now % size
            if window.start != start:
                window.start, window.count = start, 0
            checks.append((window, limit, start + size - now))
        blocked = [(w, lim, reset) for w, lim, reset in checks if w.count >= lim]
        if blocked:
            _, limit, reset = max(blocked, key=lambda c: c[2])
            return Decision(False, limit, 0, reset, reset)
        for window, _, _ in checks:
            window.count += 1
        # Report the window closest to running out.
        window, limit, reset = min(checks, key=lambda c: c[1] - c[0].count)
        return Decision(True, limit, limit - window.count, reset, 0)
