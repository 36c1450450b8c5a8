"""The gateway's time: the wall clock or a followed simulator clock, and waits measured in it.

Two kinds of time run in the gateway (docs/architecture.md, "Time"). **Domain time** is what
``Timebase.now`` returns: tariff periods, history buckets and their timestamps, the journal,
and battery command revert timers (which run on the device, in the device's time) use it; waits
for those (the periodic reconciliation that refreshes battery commands) go through
``Timebase.wait`` and so scale with the speed. **Real time** (``time.monotonic``, ``time.time``)
is for I/O and security: poll intervals, backoff, command and network timeouts, device data age,
rate limits, token expiry and revocation. With the wall clock both are the same; following a
simulator at speed N, domain time runs N times faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import aiohttp
import orjson
import structlog

from gateway.core.clock_follow import FollowedTime, SourceTime, parse_source_time
from gateway.core.config import ClockSection

Clock = Callable[[], datetime]
Monotonic = Callable[[], float]

log = structlog.get_logger("gateway.runtime.clock")

#: A wait in domain time lasts at least this many real seconds: a 30 s reconciliation at speed
#: 3600 would otherwise spin. ``Timebase.domain_span_s`` says what a wait then really spans.
MIN_REAL_WAIT_S: Final = 0.2
#: The longest ``GET /clock`` answer read (the simulator's is about 60 bytes).
MAX_ANSWER_BYTES: Final = 4096

ClockState = Literal["ok", "unreachable"]
ClockSource = Literal["wall", "simulator", "in_process"]


def utc_now() -> datetime:
    """The wall clock, aware, in UTC."""
    return datetime.now(UTC)


class ClockSourceError(Exception):
    """The configured clock source did not answer when the gateway started."""


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """Where the gateway's domain time comes from and how that source is doing (``/health``).

    ``source``: ``wall``, ``simulator`` (followed over HTTP) or ``in_process`` (the demo's own
    simulator). ``state``: ``unreachable`` while the source does not answer (domain time then
    runs on, extrapolated at the last known speed). ``last_sync_age_s``: real seconds since the
    source last answered; ``offset_s``: the last correction (source minus extrapolation, domain s).
    """

    source: ClockSource
    state: ClockState
    now: datetime
    speed: float
    url: str | None = None
    last_sync_age_s: float | None = None
    offset_s: float | None = None
    error: str | None = None


class Timebase:
    """Domain time and waits measured in it; this base is a plain ``Clock`` at speed 1.

    ``follows`` is False: the wall clock (or a test's fixed clock) is the devices' time too, so
    readings keep the drivers' own timestamps. Subclasses that follow another clock set it, and
    pollers then stamp readings with ``now()``.
    """

    source: ClockSource = "wall"
    follows: bool = False
    #: Real seconds after which a domain wait reads the speed again (None: it never changes).
    recheck_s: float | None = None

    def __init__(self, clock: Clock = utc_now, *, monotonic: Monotonic = time.monotonic) -> None:
        self._clock = clock
        self._monotonic = monotonic

    def now(self) -> datetime:
        """Domain time now (aware)."""
        return self._clock()

    @property
    def speed(self) -> float:
        """Domain seconds per real second."""
        return 1.0

    def domain_span_s(self, domain_s: float) -> float:
        """Domain seconds a ``wait(…, domain_s)`` really spans (at least ``MIN_REAL_WAIT_S`` real)."""
        return max(domain_s, MIN_REAL_WAIT_S * self.speed)

    async def wait(self, event: asyncio.Event | None, domain_s: float) -> bool:
        """Wait until ``event`` is set (True) or ``domain_s`` of domain time passed (False).

        Speed changes during the wait count from when they are seen (every ``recheck_s``); a
        frozen clock (speed 0) waits until it runs again or the event is set.
        """
        woken = event if event is not None else asyncio.Event()
        if self.recheck_s is None:  # speed 1 for ever: one real wait
            return await _wait_event(woken, max(domain_s, MIN_REAL_WAIT_S))
        deadline = self.now() + timedelta(seconds=domain_s)
        started = self._monotonic()
        while True:
            left_s = (deadline - self.now()).total_seconds()
            floor_s = MIN_REAL_WAIT_S - (self._monotonic() - started)
            if left_s <= 0 and floor_s <= 0:
                return False
            speed = self.speed
            real_s = left_s / speed if speed > 0 else math.inf
            if await _wait_event(woken, min(max(real_s, floor_s), self.recheck_s)):
                return True

    def status(self) -> ClockStatus:
        """The source and its state, for ``/health``."""
        return ClockStatus(source=self.source, state="ok", now=self.now(), speed=self.speed)

    @property
    def degraded(self) -> bool:
        """Whether the source is not answering (``/health`` says ``degraded``)."""
        return False

    async def start(self) -> None:
        """Begin following the source (the wall clock needs nothing)."""

    async def stop(self) -> None:
        """Stop following the source (safe to call twice)."""


async def _wait_event(event: asyncio.Event, real_s: float) -> bool:
    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that races with the event
    try:
        async with asyncio.timeout(real_s if math.isfinite(real_s) else None):
            await event.wait()
    except TimeoutError:
        return False
    return True


class InProcessClock(Timebase):
    """Domain time read from a clock in the same process (the demo's simulator), never backwards.

    Args:
        now: that clock's time (aware).
        speed: its speed (domain seconds per real second), read again during waits.
    """

    source: ClockSource = "in_process"
    follows = True
    recheck_s = 0.2

    def __init__(self, now: Clock, speed: Callable[[], float], *,
                 monotonic: Monotonic = time.monotonic) -> None:
        super().__init__(now, monotonic=monotonic)
        self._speed = speed
        self._floor: datetime | None = None

    def now(self) -> datetime:
        now = self._clock().astimezone(UTC)  # in UTC, as the wall clock's: stored times compare
        if self._floor is not None and now < self._floor:
            return self._floor
        self._floor = now
        return now

    @property
    def speed(self) -> float:
        return self._speed()


class FollowedClock(Timebase):
    """Domain time that follows a simulator's ``GET {url}/clock`` over HTTP.

    Read at start (``ClockSourceError`` when it does not answer within ``start_timeout_s``),
    then every ``sync_interval_s`` and again soon after a speed change; extrapolated locally in
    between (monotonic x speed), never backwards. While the source does not answer, time runs on
    at the last known speed: logged once per change of state (``clock.source_unreachable``,
    ``clock.source_back``) and shown in ``/health``.
    """

    source: ClockSource = "simulator"
    follows = True
    recheck_s = 0.5

    def __init__(self, url: str, *, sync_interval_s: float = 2.0, timeout_s: float = 2.0,
                 start_timeout_s: float = 10.0, monotonic: Monotonic = time.monotonic) -> None:
        super().__init__(monotonic=monotonic)
        self.url = url.rstrip("/")
        self._sync_interval_s = sync_interval_s
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._followed = FollowedTime()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._state: ClockState = "ok"
        self._error: str | None = None
        self._last_sync: float | None = None  # monotonic time of the last good read
        self._offset_s: float | None = None
        self._held = False

    def now(self) -> datetime:
        return self._followed.at(self._monotonic()).astimezone(UTC)

    @property
    def speed(self) -> float:
        return self._followed.speed

    @property
    def degraded(self) -> bool:
        return self._state == "unreachable"

    def status(self) -> ClockStatus:
        age = None if self._last_sync is None else round(self._monotonic() - self._last_sync, 3)
        return ClockStatus(source=self.source, state=self._state, now=self.now(),
                           speed=self.speed, url=self.url, last_sync_age_s=age,
                           offset_s=None if self._offset_s is None else round(self._offset_s, 3),
                           error=self._error)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        try:
            await self._first_sync()
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._follow(), name="clock-follow")

    async def _first_sync(self) -> None:
        deadline = self._monotonic() + self._start_timeout_s
        while not await self.sync():
            if self._monotonic() >= deadline:
                raise ClockSourceError(
                    f"gateway.clock: the simulator clock at {self.url}/clock did not answer "
                    f"within {self._start_timeout_s:g} s ({self._error})")
            await asyncio.sleep(min(0.2, self._sync_interval_s))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._sync_interval_s)
            speed = self.speed
            try:
                if await self.sync() and self.speed != speed:
                    # the change happened somewhere between two reads: a read right after it
                    # anchors the new speed closely
                    await asyncio.sleep(min(0.1, self._sync_interval_s))
                    await self.sync()
            except Exception as exc:  # a bug in one read must not stop following for good
                log.exception("clock.sync_crashed", url=self.url)
                self._unreachable(f"{type(exc).__name__}: {exc}")

    async def sync(self) -> bool:
        """Read the source once and re-anchor on it; False (logged on a change) when it failed."""
        session = self._session
        if session is None:
            raise RuntimeError("the followed clock is not started")
        sent = self._monotonic()
        try:
            source = await self._read(session)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return False
        received = self._monotonic()
        before = self._followed.speed if self._followed.anchored else None
        sync = self._followed.observe(source, sent, received)
        self._last_sync, self._offset_s = received, sync.offset_s
        if self._state == "unreachable":
            log.info("clock.source_back", url=self.url, offset_s=round(sync.offset_s, 3))
        self._state, self._error = "ok", None
        if before is not None and sync.speed_changed:
            log.info("clock.speed_changed", url=self.url, speed=source.speed, was=before)
        held = sync.held_s > 1.0  # a round trip's jitter is not worth a word
        if held and not self._held:
            log.warning("clock.source_behind", url=self.url, behind_s=round(sync.held_s, 3),
                        note="domain time holds until the source passes it")
        self._held = held
        return True

    async def _read(self, session: aiohttp.ClientSession) -> SourceTime:
        async with session.get(f"{self.url}/clock") as resp:
            if resp.status != 200:
                raise ValueError(f"GET /clock answered HTTP {resp.status}")
            body = b""
            async for chunk in resp.content.iter_chunked(1024):
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise ValueError(f"GET /clock answered more than {MAX_ANSWER_BYTES} bytes")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ValueError("GET /clock did not answer JSON") from None
        return parse_source_time(data)

    def _unreachable(self, error: str) -> None:
        if self._state != "unreachable":
            log.warning("clock.source_unreachable", url=self.url, error=error,
                        speed=self.speed, note="domain time runs on at the last known speed")
        self._state, self._error = "unreachable", error


def timebase_for(section: ClockSection, clock: Clock = utc_now) -> Timebase:
    """The timebase a config's ``gateway.clock`` asks for (``clock`` is the wall clock's stand-in)."""
    if section.source == "simulator" and section.url is not None:
        return FollowedClock(section.url, sync_interval_s=section.sync_interval_s,
                             timeout_s=section.timeout_s)
    return Timebase(clock)
