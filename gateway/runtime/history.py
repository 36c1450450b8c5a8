"""Records each site's flows into energy buckets and outage events, and answers history queries."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from gateway.core.errors import SiteOffline
from gateway.core.history import (
    MAX_EVENTS,
    MAX_GAP,
    Bucket,
    BucketAccumulator,
    ChargeSession,
    EntryPlan,
    FlowEnergy,
    Outage,
    OutageTracker,
    PowerSample,
    Window,
    bucket_start,
    plan_energy,
    resolve_window,
    sum_by_entry,
)
from gateway.core.history.charging import listable
from gateway.runtime.clock import Timebase
from gateway.runtime.devices import DeviceView
from gateway.runtime.site import Site
from gateway.runtime.storage.charging import ChargeStore
from gateway.runtime.storage.history import HistoryStore

log = structlog.get_logger("gateway.runtime.history")

# Real seconds: flushing is I/O. Buckets close by the readings' (domain) timestamps, and a query
# counts the ones not yet flushed, so a fast followed clock needs no faster flushing.
_FLUSH_INTERVAL_S = 5.0
# Real seconds between writes of the buckets still filling (the store adds a bucket's parts):
# a process killed without its final flush loses at most this much energy, not a whole bucket.
_CHECKPOINT_S = 30.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR = timedelta(days=1)  # past the bucket still filling, whatever the clocks disagree on
# History queries run one at a time: each holds the storage's one reading connection, and
# building a large answer holds the GIL in bursts: with two at once, device reads on the event
# loop timed out under test. Waiting here costs a coroutine, not a thread.
QUERIES_AT_ONCE = 1


@dataclass
class _SiteHistory:
    site: Site
    accumulator: BucketAccumulator = field(default_factory=BucketAccumulator)
    tracker: OutageTracker = field(default_factory=OutageTracker)
    pending: list[Bucket] = field(default_factory=list)
    outage_events: list[Outage] = field(default_factory=list)


class HistoryService:
    """Records history into the storage; fed by pollers, flushed in the background, queried by the API."""

    def __init__(self, store: HistoryStore, *, timebase: Timebase) -> None:
        self._store = store
        self._timebase = timebase
        self._clock = timebase.now
        self._sites: dict[int, _SiteHistory] = {}
        self._flush_lock = asyncio.Lock()
        self._query_slots = asyncio.Semaphore(QUERIES_AT_ONCE)
        self.charges: ChargeStore | None = None  # charging sessions (set by the Gateway)

    def add_site(self, site: Site) -> None:
        """Start recording a site (its open outage is resumed on the first flush)."""
        self._sites[site.id] = _SiteHistory(site)

    def on_telemetry(self, site: Site, handle: DeviceView) -> None:
        """Feed the site's newest reading (called by each poller; cheap, no I/O)."""
        entry = self._sites.get(site.id)
        if entry is None or handle.telemetry is None:
            return
        try:
            reading = site.reading()
        except SiteOffline:  # a site with an offline device records nothing
            return
        sample = PowerSample(taken_at=reading.taken_at, solar_w=reading.solar_w,
                             battery_w=reading.battery_w, grid_w=reading.grid_w,
                             load_w=reading.load_w)
        # The gap beyond which an interval is not integrated (data was missing) is real time:
        # at speed N, readings a poll interval apart are N poll intervals apart in domain time.
        max_gap = MAX_GAP * max(1.0, self._timebase.speed)
        entry.pending.extend(entry.accumulator.add(sample, max_gap=max_gap))
        event = entry.tracker.update(reading.taken_at, reading.grid_up)
        if event is not None:
            entry.outage_events.append(event)
            log.info("grid.outage" if event.end is None else "grid.restored",
                     site_id=site.id, start=event.start.isoformat())

    def buffered_wh(self, site_id: int) -> float:
        """Energy (Wh, all flows) integrated for the site but not yet in the store."""
        entry = self._sites.get(site_id)
        if entry is None:
            return 0.0
        held = [*entry.pending, *entry.accumulator.open_buckets()]
        return sum(sum(b.energy.values()) for b in held)

    async def flush(self, *, final: bool = False, checkpoint: bool = False) -> None:
        """Write completed buckets and outage transitions to the database, all sites' buckets in
        one transaction; ``final`` or ``checkpoint``: the energy of the buckets still filling too
        (their later remainder adds to it)."""
        async with self._flush_lock:
            by_site: dict[int | str, list[Bucket]] = {}
            for site_id, entry in self._sites.items():
                buckets, entry.pending = entry.pending, []
                if final or checkpoint:
                    buckets.extend(entry.accumulator.flush())
                if buckets:
                    by_site[site_id] = buckets
            if by_site:
                await self._store.add_many(by_site)
            for site_id, entry in self._sites.items():
                events, entry.outage_events = entry.outage_events, []
                for event in events:
                    # opening is a no-op when a flush already stored it; an outage may also
                    # have opened and closed between two flushes
                    await self._store.open_outage(site_id, event.start)
                    if event.end is not None:
                        await self._store.close_outage(site_id, event.end)

    async def run(self) -> None:
        """Resume open outages, then flush periodically until cancelled."""
        for site_id, entry in self._sites.items():
            current = await self._store.current_outage(site_id)
            if current is not None and entry.tracker.current is None:
                entry.tracker = OutageTracker(current)
        for n in itertools.count(1):
            await asyncio.sleep(_FLUSH_INTERVAL_S)
            try:
                await self.flush(checkpoint=n % round(_CHECKPOINT_S / _FLUSH_INTERVAL_S) == 0)
            except Exception:
                log.exception("history.flush_failed")

    async def close(self) -> None:
        """Flush what is buffered (including the bucket still filling); the storage stays open."""
        with contextlib.suppress(Exception):
            await self.flush(final=True)

    async def energy(
        self, site: Site, query: dict[str, str]
    ) -> tuple[EntryPlan, list[FlowEnergy]]:
        """``calendar_history?kind=energy``: the entries and their energy; bounded work, off the loop.

        Raises:
            HistoryQueryError: a bad parameter, or more entries than one answer may hold.
        """
        window = await asyncio.to_thread(
            resolve_window, query.get("period"), query.get("start_date"), query.get("end_date"),
            query.get("time_zone"), site_tz=site.tz, now=self._clock())
        entry = self._sites[site.id]
        async with self._query_slots:
            # Under the flush lock no bucket moves from memory to the store mid-query, so each
            # is counted exactly once.
            async with self._flush_lock:
                live = [*entry.pending, *entry.accumulator.open_buckets()]
                firsts = [b.start for b in live]
                stored_first = await self._store.first_bucket_start(site.id)
                if stored_first is not None:
                    firsts.append(stored_first)
                plan = await asyncio.to_thread(
                    plan_energy, window, query.get("period") or "day", min(firsts, default=None))
                stored = await self._store.energy_by_entry(site.id, plan.edges)
            sums = await asyncio.to_thread(sum_by_entry, live, plan.edges, stored)
            return plan, sums

    async def backup(self, site: Site, query: dict[str, str]) -> tuple[list[Outage], Window]:
        """``calendar_history?kind=backup``: the window and at most ``MAX_EVENTS`` + 1 outages
        starting in it (one more tells the renderer the window holds too many), read off the loop.

        Raises:
            HistoryQueryError: a bad parameter, or more outages than one answer may list.
        """
        window = await asyncio.to_thread(
            resolve_window, query.get("period"), query.get("start_date"), query.get("end_date"),
            query.get("time_zone"), site_tz=site.tz, now=self._clock())
        await self.flush()
        async with self._query_slots:
            # one more than an answer may list tells whether the window holds too many
            events = await self._store.outages_started(
                site.id, window.start, window.end, limit=MAX_EVENTS + 1)
            return events, window

    async def lifetime(self, site: Site) -> FlowEnergy:
        """Every flow's energy (Wh) since the site's history began, stored and still in memory.

        Summed in SQL from hourly totals (one row per hour; bounded work off the loop); under
        the flush lock so no bucket is counted twice or missed while it moves to storage.
        """
        entry = self._sites[site.id]
        edges = [_EPOCH, bucket_start(self._clock(), timedelta(hours=1)) + _FAR]
        async with self._query_slots, self._flush_lock:
            live = [*entry.pending, *entry.accumulator.open_buckets()]
            stored = (await self._store.energy_by_entry(site.id, edges))[0]
        total = stored
        for bucket in live:
            total = total + bucket.energy
        return total

    async def charge(
        self, site: Site, start: datetime | None, end: datetime | None
    ) -> list[ChargeSession]:
        """``telemetry_history?kind=charge``: the site's finished charging sessions starting in
        the window, oldest first (none without chargers).

        Raises:
            HistoryQueryError: more than ``MAX_EVENTS`` sessions start in the window.
        """
        if self.charges is None or not site.config.chargers:
            return []
        async with self._query_slots:
            sessions = await self.charges.sessions(site.id, start, end, limit=MAX_EVENTS + 1)
        return list(listable(sessions))
