"""Polls the NWS alerts API for a site's point and hands each answer (or failure) to its StormWatch."""

from __future__ import annotations

import asyncio
import random
from typing import Final

import aiohttp
import structlog

from gateway.core.config.storm import NwsSource
from gateway.core.storm import MAX_BODY_BYTES, FeedError, nws_point, parse_nws, retry_after_s
from gateway.runtime.clock import Clock, utc_now
from gateway.runtime.storm.watch import StormWatch

log = structlog.get_logger("gateway.runtime.storm.nws")

SOURCE: Final = "nws"
#: The longest pause between attempts while the feed fails (or 8 poll intervals when shorter).
MAX_BACKOFF_S: Final = 1800.0


def backoff_s(interval_s: float, failures: int) -> float:
    """The pause before the next attempt after ``failures`` consecutive failures (no jitter)."""
    if failures <= 0:
        return interval_s
    cap = max(interval_s, min(interval_s * 8, MAX_BACKOFF_S))
    return float(min(interval_s * 2 ** min(failures, 10), cap))


class NwsPoller:
    """``GET {base_url}/alerts/active?point=LAT,LON`` every ``poll_interval_s``, backing off
    (doubling, capped, jittered) while it fails, and never sooner than a 429 or 503 answer's
    ``Retry-After`` asks; a failure never clears an alert."""

    def __init__(
        self, watch: StormWatch, config: NwsSource, latitude: float, longitude: float, *,
        clock: Clock = utc_now,
    ) -> None:
        self.watch = watch
        self.config = config
        self.url = f"{config.base_url}/alerts/active"
        self.point = nws_point(latitude, longitude)
        self.polls = 0
        self._retry_after: float | None = None  # the last refusal's Retry-After (s)
        self._clock = clock
        self._headers = {"User-Agent": config.user_agent, "Accept": "application/geo+json"}

    async def run(self) -> None:
        """Poll until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout, headers=self._headers) as session:
            while True:
                try:
                    await self.poll_once(session)
                except Exception as exc:  # a bug in one poll must not end the storm watch
                    log.exception("storm.nws_poll_crashed", site_id=self.watch.site_id)
                    self.watch.failed(SOURCE, f"{self.url}: {type(exc).__name__}")
                failures = self.watch.sources[SOURCE].failures
                pause = backoff_s(self.config.poll_interval_s, failures)
                if failures:
                    pause *= random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not a secret
                if self._retry_after is not None:  # the server said when: no sooner than that
                    pause = max(pause, min(self._retry_after, MAX_BACKOFF_S))
                    self._retry_after = None
                await asyncio.sleep(pause)

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        """One request: its alerts to the watch, or the failure (logged by the watch)."""
        self.polls += 1
        try:
            body = await self._fetch(session)
            parsed = parse_nws(body, now=self._clock(), events=self.config.events)
        except FeedError as exc:
            self.watch.failed(SOURCE, f"{self.url}: {exc}")
            return
        except TimeoutError:
            self.watch.failed(SOURCE, f"{self.url}: no answer within {self.config.timeout_s:g} s")
            return
        except aiohttp.ClientError as exc:
            self.watch.failed(SOURCE, f"{self.url}: {type(exc).__name__}: {exc}"[:300])
            return
        if parsed.skipped:
            log.warning("storm.nws_features_skipped", site_id=self.watch.site_id,
                        skipped=parsed.skipped, features=parsed.features)
        await self.watch.update(SOURCE, parsed.alerts)

    async def _fetch(self, session: aiohttp.ClientSession) -> bytes:
        async with session.get(self.url, params={"point": self.point}) as resp:
            if resp.status != 200:
                wait = None
                if resp.status in {429, 503}:
                    wait = retry_after_s(resp.headers.get("Retry-After"), self._clock())
                    self._retry_after = wait
                raise FeedError(f"HTTP {resp.status}" + (f", retry after {wait:g} s" if wait else ""))
            if (resp.content_length or 0) > MAX_BODY_BYTES:
                raise FeedError(f"answer of {resp.content_length} bytes exceeds {MAX_BODY_BYTES}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(65_536):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise FeedError(f"answer exceeds {MAX_BODY_BYTES} bytes")
            return bytes(body)
