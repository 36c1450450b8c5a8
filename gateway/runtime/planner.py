"""The planner service of one site: learns from readings, fetches feeds, re-plans, feeds the policy."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import aiohttp
import orjson
import structlog

from drivers.transport.mqtt import MqttPool
from gateway.core.config.planner import FeedConfig, MqttFeedConfig, PlannerConfig
from gateway.core.errors import GatewayError
from gateway.core.forecast import (
    DailyProfile,
    FeedError,
    Learned,
    PriceFeed,
    PvCorrection,
    PvFeed,
    PvSite,
    build_horizon,
    clear_sky_fraction,
    no_default,
    parse_price_feed,
    parse_pv_feed,
    step_start,
)
from gateway.core.forecast.feeds import price_feed_message
from gateway.core.forecast.state import learned_from_json, learned_to_json
from gateway.core.planner import (
    SELF_CONSUMPTION,
    Action,
    Battery,
    Plan,
    Problem,
    Rules,
    action_for,
    solve,
)
from gateway.runtime.clock import Clock, Timebase
from gateway.runtime.site import Site
from gateway.runtime.storage import StorageError
from gateway.runtime.storage.planner import PlannerStore

log = structlog.get_logger("gateway.runtime.planner")

WAKE_S: Final = 2.0
"""How often (real seconds) the service looks at the SoC and the settings; a step boundary in
between wakes it too, in domain time, so steps follow a simulated clock at any speed."""
SOC_REPLAN_PCT: Final = 5.0
"""Re-plan within a step when the measured SoC left the plan by more than this."""
MAX_FEED_BYTES: Final = 2 * 1024 * 1024
"""A feed body larger than this is refused unread."""
"""Round-trip efficiency when no device reports one (typical of LFP home batteries)."""
DEFAULT_PV_W: Final = 5000.0
"""PV size when neither the config nor a nameplate gives one (the learned correction scales it)."""
SOLVE_TIME_LIMIT_S: Final = 5.0
SAVE_EVERY_S: Final = 900.0
"""Real seconds between saves of what the planner learned (and at every day it learns)."""


@dataclass(slots=True)
class _FeedState:
    config: FeedConfig | None  # None: pushed over MQTT
    name: str
    fetched_at: float | None = None  # loop time of the last attempt
    error: str | None = None  # the last error, logged once per change
    body: Any = None


class PlannerService:
    """Keeps ``site.plan_action`` on the current step of an up-to-date plan while the site is
    ``autonomous`` with ``strategy: optimiser``; None otherwise (the policy's two-level rule)."""

    def __init__(self, site: Site, *, clock: Clock | None = None,
                 timebase: Timebase | None = None, store: PlannerStore | None = None,
                 mqtt: MqttPool | None = None) -> None:
        self.site = site
        self._store = store
        self._mqtt = mqtt
        self._saved_at: float | None = None  # loop time of the last save
        self._unsaved_day = False
        self.config: PlannerConfig = site.config.planner
        self._timebase = timebase if timebase is not None else Timebase(clock or Timebase().now)
        self._clock = self._timebase.now
        self._log = log.bind(site_id=site.id)
        self.learned = Learned(
            load=DailyProfile(slots=96),
            pv_profile=DailyProfile(slots=96, default=no_default),
            pv_correction=PvCorrection(),
        )
        self.plan: Plan | None = None
        self.fallback_reason = ""  # why the last pass fell back to self-consumption
        self.problem: Problem | None = None
        self.planned_at: datetime | None = None
        self._key: tuple[Any, ...] | None = None
        self._action_step: datetime | None = None
        self._day: date | None = None
        self._load_sums = [0.0] * 96
        self._solar_sums = [0.0] * 96
        self._counts = [0] * 96
        self._last_sample: datetime | None = None
        self._feeds = {
            name: _FeedState(cfg, name)
            for name, cfg in (
                ("price_feed", self.config.price_feed),
                ("pv_forecast", self.config.pv_forecast),
            )
            if cfg is not None
        }
        if self.config.price_feed_mqtt is not None:
            self._feeds["price_feed"] = _FeedState(None, "price_feed")  # pushed, never fetched
        self.price_feed: PriceFeed | None = None
        self.pv_feed: PvFeed | None = None
        self.wake = asyncio.Event()

    # ---- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Re-plan on every step, on settings/tariff/feed changes and when the SoC moves."""
        await self.restore()
        follower = None
        if self.config.price_feed_mqtt is not None and self._mqtt is not None:
            follower = asyncio.create_task(self._follow_mqtt(self.config.price_feed_mqtt, self._mqtt),
                                           name=f"planner-prices-{self.site.id}")
        try:
            async with aiohttp.ClientSession() as session:
                while True:
                    try:
                        await self.tick(session)
                        await self._save_when_due()
                    except Exception:  # a bug in one pass must not end planning for good
                        self._log.exception("planner.crashed")
                        self._set_action(SELF_CONSUMPTION if self._autonomous() else None)
                    await self._timebase.wait(self.wake, self.wait_s())
                    self.wake.clear()
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

    async def _follow_mqtt(self, cfg: MqttFeedConfig, pool: MqttPool) -> None:
        """Take each price feed message from ``cfg.topic`` (the HTTP feed's JSON) and re-plan."""
        broker = pool.acquire(cfg.host, cfg.port, cfg.login())
        state = self._feeds["price_feed"]

        def on_message(_topic: str, payload: bytes, _retained: bool) -> None:
            try:
                self.price_feed = price_feed_message(state.name, payload, self._clock())
            except FeedError as exc:
                self._feed_error(state, exc.problem)
                return
            if state.error is not None:
                self._log.info("planner.feed_recovered", feed=state.name)
            state.error = None
            self.wake.set()  # new prices: plan with them now

        subs = []
        try:
            subs.append(await broker.subscribe(cfg.topic, on_message, qos=cfg.qos))
            await asyncio.Event().wait()  # until cancelled
        finally:
            await pool.release(broker, subs)

    def wait_s(self) -> float:
        """Domain seconds until the next look: the next step's start, or ``WAKE_S`` real seconds."""
        step_s = self.config.step_min * 60
        now = self._clock()
        to_step = (step_start(now, step_s) + timedelta(seconds=step_s) - now).total_seconds()
        return max(min(to_step, WAKE_S * max(self._timebase.speed, 1.0)), 0.0)

    def _autonomous(self) -> bool:
        return self.site.settings.operation_mode == "autonomous" and self.config.strategy == "optimiser"

    async def tick(self, session: aiohttp.ClientSession | None) -> None:
        """One pass: learn from the reading, refresh feeds, re-plan when something moved."""
        now = self._clock()
        try:
            reading = self.site.reading()
        except GatewayError:
            reading = None
        if reading is not None:
            self._learn(now, reading.load_w, reading.solar_w)
        if not self._autonomous():
            self._set_action(None)
            return
        if session is not None:
            await self._refresh_feeds(session)
        soc = reading.soc_pct if reading is not None else None
        if soc is None or reading is None or reading.capacity_wh is None:
            # Without SoC or capacity there is nothing to plan with: the device self-consumes.
            self._set_action(SELF_CONSUMPTION)
            return
        step_s = self.config.step_min * 60
        current = step_start(now, step_s)
        key = (current, self.site.settings, self._feed_versions())
        drifted = self._soc_drift(now, soc) > SOC_REPLAN_PCT
        if key == self._key and not drifted:
            return
        self._key = key
        await self._replan(now, soc, reading.capacity_wh, current)

    # ---- planning -----------------------------------------------------------------------------

    def _battery(self, capacity_wh: float) -> Battery:
        infos = [d.identity for d in self.site.devices if d.identity is not None]
        charge = sum(i.max_charge_w or 0.0 for i in infos)
        discharge = sum(i.max_discharge_w or 0.0 for i in infos)
        nameplate = sum(i.nameplate_power_w or 0.0 for i in infos)
        return Battery(
            capacity_wh=capacity_wh,
            max_charge_w=charge,
            max_discharge_w=discharge,
            round_trip_efficiency=self.config.round_trip_efficiency,
            inverter_max_w=nameplate or None,
        )

    def pv_site(self) -> PvSite:
        """Location and PV size the clear-sky model uses."""
        cfg = self.site.config
        pv_w = self.config.pv_kw * 1000 if self.config.pv_kw is not None else DEFAULT_PV_W
        return PvSite(latitude=cfg.latitude, longitude=cfg.longitude, pv_w=pv_w)

    async def _replan(self, now: datetime, soc: float, capacity_wh: float, current: datetime) -> None:
        settings = self.site.settings
        horizon = build_horizon(
            now=now,
            tz=self.site.tz,
            step_s=self.config.step_min * 60,
            steps=self.config.steps,
            site=self.pv_site(),
            learned=self.learned,
            tariff=settings.tariff,
            price_feed=self.price_feed,
            pv_feed=self.pv_feed,
        )
        battery = self._battery(capacity_wh)
        rules = Rules(
            reserve_pct=settings.backup_reserve_pct,
            grid_charging=settings.grid_charging_allowed,
            export_rule=settings.export_rule,
            wear_cost_per_kwh=self.config.wear_cost_per_kwh,
        )
        if battery.max_charge_w <= 0 or battery.max_discharge_w <= 0:
            # Without the battery's power limits a plan would command a battery it cannot see.
            horizon = "the battery's charge/discharge power limits are unknown (no nameplate)"
        if isinstance(horizon, str):
            self.plan = None
            self._fallback(horizon)
            return
        problem = Problem(battery=battery, rules=rules, horizon=horizon, soc_pct=soc)
        # The LP takes milliseconds, but it is CPU work: off the event loop.
        plan = await asyncio.to_thread(solve, problem, time_limit_s=SOLVE_TIME_LIMIT_S)
        self.plan, self.problem, self.planned_at = plan, problem, now
        if plan.kind != "optimal":
            self._fallback(plan.reason)
            return
        if self.fallback_reason:
            self._log.info("planner.recovered", after=self.fallback_reason)
            self.fallback_reason = ""
        action = action_for(plan.steps[0], soc, battery, rules, plan.steps[1:])
        previous = self.site.plan_action
        if (
            self._action_step == current
            and previous is not None
            and previous.kind not in {action.kind, "self_consumption"}
        ):
            # Hysteresis: within a step the mode holds (only its power follows the new plan),
            # so a battery never flips between charging and discharging inside one step.
            action = previous
        self._action_step = current
        self._log.debug(
            "planner.planned",
            cost=round(plan.cost, 4),
            steps=len(plan.steps),
            self_consumption_cost=round(plan.self_consumption_cost, 4),
            solve_ms=round(plan.solve_ms, 1),
            action=action.kind,
        )
        self._set_action(action)

    def _fallback(self, reason: str) -> None:
        if reason != self.fallback_reason:  # once per change, not every step
            self._log.warning("planner.fallback", mode="self_consumption", reason=reason)
        self.fallback_reason = reason
        self._set_action(SELF_CONSUMPTION)

    def _set_action(self, action: Action | None) -> None:
        if action != self.site.plan_action:
            self.site.set_plan_action(action)

    def _soc_drift(self, now: datetime, soc: float) -> float:
        plan, problem = self.plan, self.problem
        if plan is None or problem is None or plan.kind != "optimal":
            return 0.0
        step_s = problem.horizon.step_s
        for i, step in enumerate(plan.steps):
            if (now - step.start).total_seconds() < step_s:
                expected = problem.soc_pct if i == 0 else plan.steps[i - 1].soc_pct
                return abs(soc - expected)
        return math.inf  # the plan ran out: re-plan

    # ---- learning -----------------------------------------------------------------------------

    async def restore(self) -> None:
        """Take back what an earlier run learned (a restart must not forget the home's profile)."""
        if self._store is None:
            return
        try:
            saved = await self._store.load(self.site.id)
            if saved is None:
                return
            self.learned = learned_from_json(saved, slots=96)
        except (StorageError, sqlite3.Error, ValueError) as exc:
            self._log.warning("planner.state_unreadable", error=str(exc)[:200],
                              detail="starting from the day-one profile")
            return
        self._log.info("planner.state_restored", load_days=self.learned.load.days,
                       pv_correction=round(self.learned.pv_correction.factor, 3))

    async def _save_when_due(self) -> None:
        now = asyncio.get_running_loop().time()
        if not self._unsaved_day and self._saved_at is not None and now - self._saved_at < SAVE_EVERY_S:
            return
        await self.save()

    async def save(self) -> None:
        """Save what was learned so far (a failure is logged; the next save tries again)."""
        if self._store is None:
            return
        self._saved_at, self._unsaved_day = asyncio.get_running_loop().time(), False
        try:
            await self._store.save(self.site.id, learned_to_json(self.learned), time.time())
        except (StorageError, sqlite3.Error) as exc:  # the next save tries again
            self._log.warning("planner.state_not_saved", error=str(exc)[:200])

    def _learn(self, now: datetime, load_w: float, solar_w: float) -> None:
        local = now.astimezone(self.site.tz)
        if self._day is not None and local.date() != self._day:
            self._close_day(self._day)
        self._day = local.date()
        last, self._last_sample = self._last_sample, now
        slot = (local.hour * 60 + local.minute) * 96 // 1440
        if math.isfinite(load_w) and load_w >= 0 and math.isfinite(solar_w) and solar_w >= 0:
            self._load_sums[slot] += load_w
            self._solar_sums[slot] += solar_w
            self._counts[slot] += 1
        if last is None or not math.isfinite(solar_w):
            return
        dt_h = min(max((now - last).total_seconds(), 0.0), 900.0) / 3600
        site = self.pv_site()
        if site.latitude is not None and site.longitude is not None:
            clear_wh = clear_sky_fraction(site.latitude, site.longitude, now) * site.pv_w * dt_h
            self.learned.pv_correction.observe(local.date(), max(solar_w, 0.0) * dt_h, clear_wh)

    def _close_day(self, day: date) -> None:
        counts = self._counts
        seen = sum(1 for c in counts if c)
        if seen >= 72:  # learn from days seen for at least 18 hours
            load = [s / c if c else math.nan for s, c in zip(self._load_sums, counts, strict=True)]
            solar = [s / c if c else math.nan for s, c in zip(self._solar_sums, counts, strict=True)]
            self.learned.load.learn_day(day.weekday(), load)
            self.learned.pv_profile.learn_day(day.weekday(), solar)
            self._unsaved_day = True
            self._log.info(
                "planner.learned_day",
                day=day.isoformat(),
                load_days=self.learned.load.days,
                pv_correction=round(self.learned.pv_correction.factor, 3),
            )
        self._load_sums = [0.0] * 96
        self._solar_sums = [0.0] * 96
        self._counts = [0] * 96

    # ---- feeds --------------------------------------------------------------------------------

    def _feed_versions(self) -> tuple[int, int]:
        return (id(self.price_feed), id(self.pv_feed))

    def feed_status(self) -> dict[str, str | None]:
        """Each configured feed's last error (None = good)."""
        return {name: state.error for name, state in self._feeds.items()}

    async def _refresh_feeds(self, session: aiohttp.ClientSession) -> None:
        loop_now = asyncio.get_running_loop().time()
        for state in self._feeds.values():
            if state.config is None:
                continue  # pushed: taken when a message comes (_follow_mqtt)
            if state.fetched_at is not None and loop_now - state.fetched_at < state.config.refresh_s:
                continue
            state.fetched_at = loop_now
            try:
                body = await self._fetch(session, state.config)
                now = self._clock()
                if state.name == "price_feed":
                    self.price_feed = parse_price_feed(state.name, body, now)
                else:
                    self.pv_feed = parse_pv_feed(state.name, body, self.site.tz, now)
            except FeedError as exc:
                self._feed_error(state, exc.problem)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                # The URL may carry an API key: never echo it.
                detail = str(exc).replace(state.config.url, "<url>")
                self._feed_error(state, f"unreachable: {type(exc).__name__}: {detail}"[:300])
            else:
                if state.error is not None:
                    self._log.info("planner.feed_recovered", feed=state.name)
                state.error = None
        # A feed that went stale stops being used: its last good data only covers the past.
        now = self._clock()
        if self.price_feed is not None and self.price_feed.end <= now:
            self.price_feed = None
        if self.pv_feed is not None and self.pv_feed.points[-1][0] <= now:
            self.pv_feed = None

    def _feed_error(self, state: _FeedState, problem: str) -> None:
        if problem != state.error:
            # Once per change: a feed down for a day logs once, not every refresh.
            self._log.warning(
                "planner.feed_rejected",
                feed=state.name,
                error=problem,
                using="last good data" if self._has_data(state.name) else "the tariff",
            )
        state.error = problem

    def _has_data(self, name: str) -> bool:
        return (self.price_feed if name == "price_feed" else self.pv_feed) is not None

    @staticmethod
    async def _fetch(session: aiohttp.ClientSession, cfg: FeedConfig) -> Any:
        timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        async with session.get(cfg.url, timeout=timeout, headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                raise FeedError(cfg.url, f"HTTP {resp.status}")
            body = await resp.content.read(MAX_FEED_BYTES + 1)
            if len(body) > MAX_FEED_BYTES:
                raise FeedError(cfg.url, f"body larger than {MAX_FEED_BYTES} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FeedError(cfg.url, "body is not JSON") from None

