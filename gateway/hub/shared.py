"""What replicas share through Redis: per-token rate-limit counters."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import structlog
from redis.driver_info import DriverInfo

from gateway.core.config import Plan
from gateway.web.ratelimit import Decision

log = structlog.get_logger("gateway.hub.shared")

_MINUTE = 60
_DAY = 86_400

# Check both windows, then count the request in both, in one atomic step: a refused request is
# not counted (as the edge's RateLimiter), and concurrent replicas cannot overshoot the plan.
_HIT = """
local m = tonumber(redis.call('GET', KEYS[1]) or '0')
local d = tonumber(redis.call('GET', KEYS[2]) or '0')
if d >= tonumber(ARGV[2]) or m >= tonumber(ARGV[1]) then return {0, m, d} end
m = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 120)
d = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 90000)
return {1, m, d}
"""


async def connect_redis(url: str) -> aioredis.Redis:
    """A client for ``url`` (connections are made on first use)."""
    # redis-py reads its package metadata for CLIENT SETINFO on each connection: once, off the loop
    info = await asyncio.to_thread(DriverInfo)
    return aioredis.Redis.from_url(url, driver_info=info)


class SharedLimiter:
    """The edge's fixed-window plans, counted in Redis so every replica sees the same counts."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._hit = client.register_script(_HIT)

    async def hit(self, key: str, plan: Plan, now_s: float) -> Decision:
        """Count one request for token ``key`` and decide whether it may pass."""
        now = int(now_s)
        minute_start, day_start = now - now % _MINUTE, now - now % _DAY
        keys = [f"{self._prefix}rl:{key}:m:{minute_start}", f"{self._prefix}rl:{key}:d:{day_start}"]
        allowed, minute, day = await self._hit(keys=keys, args=[plan.per_minute, plan.per_day])
        minute_reset, day_reset = minute_start + _MINUTE - now, day_start + _DAY - now
        if not allowed:
            if int(day) >= plan.per_day:
                return Decision(False, plan.per_day, 0, day_reset, day_reset)
            return Decision(False, plan.per_minute, 0, minute_reset, minute_reset)
        minute_left, day_left = plan.per_minute - int(minute), plan.per_day - int(day)
        if day_left < minute_left:
            return Decision(True, plan.per_day, day_left, day_reset, 0)
        return Decision(True, plan.per_minute, minute_left, minute_reset, 0)
