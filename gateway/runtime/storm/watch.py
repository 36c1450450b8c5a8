"""A site's storm watch: every source's latest alerts, which count now, and storm-mode episodes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import structlog

from gateway.core.storm import StormAlert, StormEpisode, active_alerts, primary
from gateway.runtime.clock import Clock, utc_now
from gateway.runtime.storage import StorageError
from gateway.runtime.storage.storm import StormStore

log = structlog.get_logger("gateway.runtime.storm")

#: How often (real seconds) the watch re-checks alert ends when nothing else wakes it.
TICK_S: Final = 1.0
#: Sources whose alerts are kept across restarts (a device's reading is live, not kept).
PERSISTED: Final = frozenset({"nws", "mqtt", "admin"})

SourceStatus = Literal["unknown", "ok", "failing"]


@dataclass(slots=True)
class SourceState:
    """What one source said last and whether it answers (shown in /health)."""

    alerts: tuple[StormAlert, ...] = ()
    status: SourceStatus = "unknown"
    last_error: str | None = None
    last_ok_at: datetime | None = None
    failures: int = 0  # consecutive failures


class StormWatch:
    """One site's alert sources and what storm mode makes of them.

    Sources report with ``update`` (a successful answer: its alerts replace the source's
    previous ones, an empty answer clears them) or ``failed`` (nothing changes: an unreachable
    source never clears an alert before its ``ends``). ``alerts(now)`` is the active set;
    ``run`` keeps the episode record and wakes the site (``on_change``) when it changes, also
    when an alert's ``ends`` passes.
    """

    def __init__(
        self, site_id: int, store: StormStore | None = None, *, clock: Clock = utc_now,
        configured: tuple[str, ...] = (),
    ) -> None:
        self.site_id = site_id
        self.sources: dict[str, SourceState] = {name: SourceState() for name in configured}
        self.version = 0  # bumped whenever the active set may have changed (cache keys)
        self.on_change: Callable[[], None] = lambda: None
        self._store = store
        self._clock = clock
        self._woken = asyncio.Event()
        self._episode: StormEpisode | None = None
        self._recording = asyncio.Lock()
        self._shown: tuple[StormAlert, ...] = ()
        self._log = log.bind(site_id=site_id)

    async def load(self) -> None:
        """Restore the persisted alerts and open episode (a restart mid-storm keeps the storm)."""
        if self._store is None:
            return
        for source, alerts in (await self._store.load_sources(self.site_id)).items():
            state = self.sources.setdefault(source, SourceState())
            state.alerts = alerts
        self._episode = await self._store.open_episode_of(self.site_id)
        restored = self.alerts(self._clock())
        if restored:
            self._log.info("storm.restored", alerts=[_fields(a) for a in restored])
        self.version += 1

    # ---- what sources report -------------------------------------------------------------

    async def update(self, source: str, alerts: tuple[StormAlert, ...]) -> None:
        """A source answered: ``alerts`` are all it holds now (empty: it clears its alerts)."""
        now = self._clock()
        state = self.sources.setdefault(source, SourceState())
        if state.status == "failing":
            self._log.info("storm.source_recovered", source=source, after_failures=state.failures)
        state.status, state.last_error, state.failures, state.last_ok_at = "ok", None, 0, now
        if alerts == state.alerts:
            return
        state.alerts = alerts
        if source in PERSISTED and self._store is not None:
            try:
                await self._store.save_source(self.site_id, source, alerts, now)
            except (sqlite3.Error, StorageError) as exc:  # the alert still counts in memory
                self._log.warning("storm.not_saved", source=source, error=str(exc))
        self._changed()

    def failed(self, source: str, error: str) -> None:
        """A source could not be read; its alerts stay until their ``ends``. Logged once per
        change of state (and of error)."""
        state = self.sources.setdefault(source, SourceState())
        state.failures += 1
        if state.status != "failing" or state.last_error != error:
            self._log.warning("storm.source_failed", source=source, error=error,
                              holding=[_fields(a) for a in state.alerts])
        state.status, state.last_error = "failing", error

    def device_reading(self, device: str, alert: bool | None) -> None:
        """A device's own storm bit (only where its driver options name one); live, not kept."""
        source = f"device:{device}"
        state = self.sources.get(source)
        if alert is None and state is None:
            return
        alerts = (StormAlert(event="Storm alert (device)", source=source),) if alert else ()
        if state is None:
            state = self.sources[source] = SourceState()
        if alert is None:
            state.status = "unknown"
        else:
            state.status, state.last_ok_at = "ok", self._clock()
        if state.alerts != alerts:
            state.alerts = alerts
            self._changed()

    # ---- what it means ---------------------------------------------------------------------

    def now(self) -> datetime:
        """The site's time (the gateway's domain clock)."""
        return self._clock()

    def alerts(self, now: datetime) -> tuple[StormAlert, ...]:
        """The alerts that count at ``now``, from every source."""
        return active_alerts({k: v.alerts for k, v in self.sources.items()}, now)

    def active(self, now: datetime) -> bool:
        """Whether any alert counts at ``now``."""
        return any(a.active(now) for s in self.sources.values() for a in s.alerts)

    @property
    def episode(self) -> StormEpisode | None:
        """The storm-mode episode in progress, if any."""
        return self._episode

    async def episodes(self, start: datetime | None, end: datetime) -> list[StormEpisode]:
        """Storm-mode episodes overlapping ``[start, end)``, oldest first (the one in progress
        included even before it is stored)."""
        found = [] if self._store is None else await self._store.episodes(self.site_id, start, end)
        current = self._episode
        if current is not None and current.start < end and all(e.start != current.start for e in found):
            found.append(current)
        return found

    async def recent_episodes(self, count: int) -> list[StormEpisode]:
        """The last ``count`` storm-mode episodes, newest first (the one in progress included)."""
        found = [] if self._store is None else await self._store.recent_episodes(self.site_id, count)
        current = self._episode
        if current is not None and all(e.start != current.start for e in found):
            found = [current, *found][:count]
        return found

    def _changed(self) -> None:
        self.version += 1
        self._woken.set()

    async def run(self, enabled: Callable[[], bool]) -> None:
        """Log alert changes, keep the episode record (storm mode = ``enabled()`` and an alert),
        and wake the site when the active set changes, until cancelled."""
        while True:
            try:
                async with asyncio.timeout(TICK_S):
                    await self._woken.wait()
            except TimeoutError:
                pass
            self._woken.clear()
            try:
                await self.check(enabled())
            except Exception:  # one bad pass must not end the storm watch for good
                self._log.exception("storm.check_crashed")

    async def check(self, enabled: bool) -> None:
        """One pass of ``run``: compare the active set and the episode with what is recorded."""
        now = self._clock()
        current = self.alerts(now)
        if current != self._shown:
            raised = [a for a in current if a not in self._shown]
            ended = [a for a in self._shown if a not in current]
            for a in raised:
                self._log.info("storm.alert_active", **_fields(a))
            for a in ended:
                self._log.info("storm.alert_ended", **_fields(a),
                               why="expired" if a.ends is not None and now >= a.ends
                               else "cleared by its source")
            self._shown = current
            self.version += 1
            self.on_change()
        await self._record(now, current if enabled else ())

    async def _record(self, now: datetime, counting: tuple[StormAlert, ...]) -> None:
        # One pass at a time, and the episode changes in memory only once the storage has it:
        # a gateway stopped mid-write (or a reader of ``episode``) never sees an episode that a
        # restart would not find.
        async with self._recording:
            lead = primary(counting)
            if lead is not None and self._episode is None:
                episode = StormEpisode(start=now, end=None, event=lead.event, source=lead.source,
                                       alert_onset=lead.onset, alert_ends=lead.ends)
                await self._store_call(lambda s: s.open_episode(self.site_id, episode))
                self._episode = episode
                self._log.info("storm.mode_started", **_fields(lead), alerts=len(counting))
            elif lead is None and self._episode is not None:
                started = self._episode.start
                await self._store_call(lambda s: s.close_episode(self.site_id, now))
                self._episode = None
                self._log.info("storm.mode_ended", since=started.isoformat(),
                               duration_s=round((now - started).total_seconds()))

    async def _store_call(self, call: Callable[[StormStore], Awaitable[None]]) -> None:
        if self._store is None:
            return
        try:
            await call(self._store)
        except (sqlite3.Error, StorageError) as exc:
            self._log.warning("storm.episode_not_saved", error=str(exc))


def _fields(alert: StormAlert) -> dict[str, str | None]:
    """An alert as log fields: which, from where, from when to when."""
    return {"alert": alert.event, "source": alert.source, "alert_id": alert.id or None,
            "onset": None if alert.onset is None else alert.onset.isoformat(),
            "ends": None if alert.ends is None else alert.ends.isoformat()}
