"""One simulated home driven by a policy, minute by minute, with no sockets (the energy bench's engine)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from drivers.base import Setpoints
from gateway.core.forecast import (
    DailyProfile,
    Learned,
    PriceFeed,
    PvCorrection,
    PvSite,
    build_horizon,
    clear_sky_fraction,
    no_default,
)
from gateway.core.planner import (
    SELF_CONSUMPTION,
    Action,
    Battery,
    Horizon,
    Plan,
    Problem,
    Rules,
    action_for,
    solve,
)
from gateway.core.policy import NO_ALERTS, SitePolicyInput, compute_setpoints
from gateway.core.settings import SiteSettings
from gateway.core.tariff import Tariff
from simulator import physics
from simulator.config import HomeConfig
from simulator.physics import FirmwareSettings, HomePhysics, with_export_limit_w

MINUTE_S = 60
STEP_S = 1800  # the planner's default step (gateway/core/config/planner.py)
SLOTS_PER_DAY = 86400 // STEP_S


@contextlib.contextmanager
def minute_substeps() -> Iterator[None]:
    """Integrate one simulated minute at a time while a run lasts (the load noise moves on
    5-minute knots and the clouds per step, so finer sub-steps change no figure but the run
    time); restored afterwards, so nothing else in the process sees it."""
    before = physics.SUBSTEP_MAX_S
    physics.SUBSTEP_MAX_S = float(MINUTE_S)
    try:
        yield
    finally:
        physics.SUBSTEP_MAX_S = before


def firmware_for(setpoints: Setpoints, config: HomeConfig, current: FirmwareSettings) -> FirmwareSettings:
    """The firmware settings a driver would write for ``setpoints`` (SunSpec model 124 semantics)."""
    fw = replace(
        current,
        reserve_pct=float(setpoints.reserve_pct),
        grid_charging=setpoints.grid_charging,
        storage_mode=0,
        revert_s=0.0,
    )
    fw = with_export_limit_w(fw, setpoints.export_limit_w, config.inverter_max_w)
    command = setpoints.battery_w
    if command is None:
        return fw
    if command < 0:
        rate = 100 * -command / config.battery_max_charge_w
        return replace(fw, storage_mode=1, charge_rate_pct=min(100.0, rate))
    rate = 100 * command / config.battery_max_discharge_w
    return replace(fw, storage_mode=2, discharge_rate_pct=min(100.0, rate))


def mode_of(setpoints: Setpoints, settings: SiteSettings) -> str:
    """A name for what the battery is told (mode changes are counted on it)."""
    if setpoints.battery_w is not None:
        if setpoints.battery_w < 0:
            return "charge"
        return "discharge" if setpoints.battery_w > 0 else "idle"
    if setpoints.reserve_pct > settings.backup_reserve_pct:
        return "hold"
    return "self"


@dataclass(frozen=True, slots=True, kw_only=True)
class World:
    """Everything outside the home's control over the run, per planner step ("slot") from ``start``.

    Attributes:
        start: aware start (local midnight).
        tz: the home's zone.
        cloud: cloud factor per slot.
        load_scale: load multiplier per local day.
        buy, sell: price per kWh per slot.
        known_until: per slot, the first slot whose price is not yet published at that slot.
    """

    start: datetime
    tz: tzinfo
    cloud: Sequence[float]
    load_scale: Sequence[float]
    buy: Sequence[float]
    sell: Sequence[float]
    known_until: Sequence[int]

    @property
    def slots(self) -> int:
        """Number of slots in the run."""
        return len(self.cloud)

    def slot_start(self, slot: int) -> datetime:
        """Start of ``slot``."""
        return self.start + timedelta(seconds=slot * STEP_S)


def true_means(config: HomeConfig, world: World) -> tuple[list[float], list[float]]:
    """Mean available PV and demand per slot as the physics will produce them (perfect foresight)."""
    pv, load = [], []
    for slot in range(world.slots):
        start = world.slot_start(slot)
        day = slot // SLOTS_PER_DAY
        pv_sum = load_sum = 0.0
        for k in range(STEP_S // MINUTE_S):
            at = start + timedelta(seconds=(k + 0.5) * MINUTE_S)
            share = physics.clear_sky_fraction(config.latitude, config.longitude, at)
            pv_sum += config.pv_peak_w * share * (1 - 0.85 * world.cloud[slot])
            local = at.astimezone(world.tz)
            load_sum += physics.house_load_w(config.base_load_w, local, config.seed) * world.load_scale[day]
        pv.append(pv_sum / (STEP_S // MINUTE_S))
        load.append(load_sum / (STEP_S // MINUTE_S))
    return pv, load


@dataclass(slots=True)
class Outcome:
    """What one policy did over the run, per local day."""

    cost: list[float] = field(default_factory=list)
    import_cost: list[float] = field(default_factory=list)
    export_revenue: list[float] = field(default_factory=list)
    stored_delta_wh: list[float] = field(default_factory=list)
    discharge_wh: list[float] = field(default_factory=list)
    mode_changes: list[int] = field(default_factory=list)
    step_cpu_ms: list[float] = field(default_factory=list)
    fallbacks: int = 0
    violations: list[str] = field(default_factory=list)


class PlannerAgent:
    """The autonomous planner as the runtime runs it: own forecasts learned day by day, or the truth."""

    def __init__(
        self,
        config: HomeConfig,
        world: World,
        settings: SiteSettings,
        *,
        tariff: Tariff | None,
        horizon_steps: int = SLOTS_PER_DAY,
        truth: tuple[list[float], list[float]] | None = None,
        wear_cost_per_kwh: float | None = None,
    ) -> None:
        self.config = config
        self.world = world
        self.tariff = tariff
        self.horizon_steps = horizon_steps
        self.truth = truth
        self.battery = Battery(
            capacity_wh=config.battery_capacity_wh,
            max_charge_w=config.battery_max_charge_w,
            max_discharge_w=config.battery_max_discharge_w,
            round_trip_efficiency=config.round_trip_efficiency,
            inverter_max_w=config.inverter_max_w,
        )
        rules = Rules(
            reserve_pct=settings.backup_reserve_pct,
            grid_charging=settings.grid_charging_allowed,
            export_rule=settings.export_rule,
        )
        self.rules = (
            rules if wear_cost_per_kwh is None else replace(rules, wear_cost_per_kwh=wear_cost_per_kwh)
        )
        self.site = PvSite(latitude=config.latitude, longitude=config.longitude, pv_w=config.pv_peak_w)
        self.learned = Learned(
            load=DailyProfile(slots=SLOTS_PER_DAY),
            pv_profile=DailyProfile(slots=SLOTS_PER_DAY, default=no_default),
            pv_correction=PvCorrection(),
        )
        self.cpu_ms: list[float] = []
        self.fallbacks = 0
        self.last_plan: Plan | None = None

    def learn_day(self, day_start: datetime, load_means: Sequence[float]) -> None:
        """What the gateway learns at local midnight from the day's readings."""
        self.learned.load.learn_day(day_start.astimezone(self.world.tz).weekday(), load_means)

    def observe(self, now: datetime, solar_w: float, dt_s: float) -> None:
        """One reading of the PV, as the gateway's planner service takes it."""
        share = clear_sky_fraction(self.config.latitude, self.config.longitude, now)
        self.learned.pv_correction.observe(
            now.astimezone(self.world.tz).date(), solar_w * dt_s / 3600, share * self.site.pv_w * dt_s / 3600
        )

    def _price_feed(self, slot: int) -> PriceFeed:
        from gateway.core.forecast.feeds import PriceEntry

        end = min(self.world.known_until[slot], self.world.slots)
        entries = tuple(
            PriceEntry(
                start=self.world.slot_start(i),
                end=self.world.slot_start(i + 1),
                buy=self.world.buy[i],
                sell=self.world.sell[i],
            )
            for i in range(slot, end)
        )
        return PriceFeed(name="bench", entries=entries)

    def horizon(self, slot: int) -> Horizon | str:
        """The horizon the planner sees at ``slot``."""
        now = self.world.slot_start(slot)
        feed = self._price_feed(slot) if self.tariff is None else None
        if self.truth is None:
            return build_horizon(
                now=now,
                tz=self.world.tz,
                step_s=STEP_S,
                steps=self.horizon_steps,
                site=self.site,
                learned=self.learned,
                tariff=self.tariff,
                price_feed=feed,
            )
        end = min(slot + self.horizon_steps, self.world.known_until[slot], self.world.slots)
        pv, load = self.truth
        return Horizon(
            start=now,
            step_s=STEP_S,
            solar_w=tuple(pv[slot:end]),
            load_w=tuple(load[slot:end]),
            buy=tuple(self.world.buy[slot:end]),
            sell=tuple(self.world.sell[slot:end]),
        )

    def __call__(self, slot: int, soc_pct: float) -> Action:
        started = time.process_time()
        horizon = self.horizon(slot)
        if isinstance(horizon, str):
            self.fallbacks += 1
            return SELF_CONSUMPTION
        plan = solve(Problem(battery=self.battery, rules=self.rules, horizon=horizon, soc_pct=soc_pct))
        self.last_plan = plan
        if plan.kind != "optimal":
            self.fallbacks += 1
        action = action_for(plan.steps[0], soc_pct, self.battery, self.rules, plan.steps[1:])
        self.cpu_ms.append((time.process_time() - started) * 1000)
        return action


def run_home(
    config: HomeConfig,
    world: World,
    settings: SiteSettings,
    *,
    rule_tariff: Callable[[int], Tariff | None],
    planner: PlannerAgent | None,
    days: int | None = None,
    check: bool = False,
) -> Outcome:
    """Drive the home through ``world`` under ``settings`` and the given planner (None = no plan).

    ``rule_tariff(day)`` is the tariff handed to the policy (the two-level rule reads it).
    With ``check``, every minute is checked against the user's rules (reserve, export rule,
    grid charging) and breaches are listed in ``Outcome.violations``.
    """
    with minute_substeps():
        return _run_home(
            config, world, settings, rule_tariff=rule_tariff, planner=planner, days=days, check=check
        )


def _run_home(
    config: HomeConfig,
    world: World,
    settings: SiteSettings,
    *,
    rule_tariff: Callable[[int], Tariff | None],
    planner: PlannerAgent | None,
    days: int | None,
    check: bool,
) -> Outcome:
    home = HomePhysics(config, world.start, tz=world.tz)
    out = Outcome()
    fw = home.firmware
    applied: Setpoints | None = None
    action: Action | None = None
    mode = ""
    day_cost = day_import = day_export = day_discharge = 0.0
    day_start_wh = home.soc_pct / 100 * config.battery_capacity_wh
    day_changes = 0
    load_sums = [0.0] * SLOTS_PER_DAY
    minutes_per_slot = STEP_S // MINUTE_S
    slots = world.slots if days is None else min(world.slots, days * SLOTS_PER_DAY)
    for slot in range(slots):
        day, slot_of_day = divmod(slot, SLOTS_PER_DAY)
        if slot_of_day == 0:
            home.set_load_scale(world.load_scale[day])
        home.set_cloud_factor(world.cloud[slot])
        if planner is not None:
            action = planner(slot, home.soc_pct)
        tariff = rule_tariff(day)
        for minute in range(minutes_per_slot):
            truth = home.truth()
            now = world.slot_start(slot) + timedelta(seconds=minute * MINUTE_S)
            telemetry = SitePolicyInput(
                soc_pct=truth.soc_pct,
                solar_w=truth.solar_w,
                load_w=truth.load_w,
                grid_up=True,
                max_charge_w=config.battery_max_charge_w,
                max_discharge_w=config.battery_max_discharge_w,
            )
            setpoints = compute_setpoints(
                settings, telemetry, tariff, now.astimezone(world.tz), NO_ALERTS, plan=action
            )
            if setpoints != applied:
                fw = firmware_for(setpoints, config, fw)
                home.apply_firmware(fw)
                applied = setpoints
            new_mode = mode_of(setpoints, settings)
            if mode and new_mode != mode:
                day_changes += 1
            mode = new_mode
            before = home.truth()
            home.step(MINUTE_S)
            after = home.truth()
            imported = after.grid_import_wh - before.grid_import_wh
            exported = after.grid_export_wh - before.grid_export_wh
            day_cost += (imported * world.buy[slot] - exported * world.sell[slot]) / 1000
            day_import += imported * world.buy[slot] / 1000
            day_export += exported * world.sell[slot] / 1000
            day_discharge += after.battery_discharge_wh - before.battery_discharge_wh
            load_sums[slot_of_day] += after.load_w / minutes_per_slot
            if planner is not None and planner.truth is None:
                planner.observe(now + timedelta(seconds=MINUTE_S / 2), after.solar_w, MINUTE_S)
            if check:
                _check(out, settings, before, after, now)
        if slot_of_day == SLOTS_PER_DAY - 1:
            out.cost.append(day_cost)
            out.import_cost.append(day_import)
            out.export_revenue.append(day_export)
            end_wh = home.soc_pct / 100 * config.battery_capacity_wh
            out.stored_delta_wh.append(end_wh - day_start_wh)
            day_start_wh = end_wh
            out.discharge_wh.append(day_discharge)
            out.mode_changes.append(day_changes)
            if planner is not None and planner.truth is None:
                planner.learn_day(world.slot_start(slot - SLOTS_PER_DAY + 1), load_sums)
            day_cost = day_import = day_export = day_discharge = 0.0
            day_changes = 0
            load_sums = [0.0] * SLOTS_PER_DAY
    if planner is not None:
        out.step_cpu_ms = planner.cpu_ms
        out.fallbacks = planner.fallbacks
    return out


def _check(
    out: Outcome, settings: SiteSettings, before: physics.HomeTruth, after: physics.HomeTruth, now: datetime
) -> None:
    tol_wh = 0.5
    if before.soc_pct >= settings.backup_reserve_pct and after.soc_pct < settings.backup_reserve_pct - 0.05:
        out.violations.append(
            f"{now}: SoC {after.soc_pct:.2f} % below reserve {settings.backup_reserve_pct} %"
        )
    charge_wh = after.battery_charge_wh - before.battery_charge_wh
    solar_wh = after.solar_w * MINUTE_S / 3600
    load_wh = after.load_w * MINUTE_S / 3600
    surplus_wh = max(solar_wh - load_wh, 0.0)
    if not settings.grid_charging_allowed and charge_wh > surplus_wh + tol_wh:
        out.violations.append(f"{now}: charged {charge_wh:.1f} Wh with {surplus_wh:.1f} Wh of solar surplus")
    exported = after.grid_export_wh - before.grid_export_wh
    if settings.export_rule == "never" and exported > tol_wh:
        out.violations.append(f"{now}: exported {exported:.1f} Wh under export rule 'never'")
    if settings.export_rule == "pv_only" and exported > surplus_wh + tol_wh:
        out.violations.append(f"{now}: exported {exported:.1f} Wh with {surplus_wh:.1f} Wh of solar surplus")
    if not math.isfinite(after.soc_pct):
        out.violations.append(f"{now}: SoC is not finite")
