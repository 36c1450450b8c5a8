"""The planner's inputs and outputs: the battery, the user's rules, the horizon and the plan."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from gateway.core.settings import ExportRule

DEFAULT_WEAR_COST_PER_KWH: Final = 0.05
"""Battery wear per kWh cycled (half charged on the way in, half on the way out), in the
tariff's currency: a 13.5 kWh LFP pack of ~5 kEUR over ~7000 cycles costs ~0.05 per kWh
cycled. It also keeps the planner from trading stored energy on margins a forecast error eats."""
FLAP_COST_PER_KW: Final = 0.00002
"""Cost per kW of change in planned battery power between steps: enough to break ties in
favour of steady plans (no oscillation around a threshold), too small to change a real decision."""
SELF_CONSUMPTION_PULL_PER_KWH: Final = 0.001
"""Cost per kWh the battery does differently from self-consumption in a step: among plans of
(nearly) equal cost the plan does what self-consumption would (charge from the surplus when it
comes, cover the deficit when it comes), which is robust to forecast errors: the device's own
fast control then follows the home. Far below any price spread worth acting on."""
EARLY_PER_KWH: Final = 0.0005
"""Extra cost per kWh charged or discharged, growing linearly to this over the horizon: when
the total is fixed (the battery fills up either way), do it as early as self-consumption would,
not spread over the day, where a forecast error turns the plan into lost solar."""

PlanKind = Literal["optimal", "self_consumption"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Battery:
    """What the site's storage can do.

    Attributes:
        capacity_wh: usable energy at 100 % SoC.
        max_charge_w: charge limit at the battery terminals (> 0).
        max_discharge_w: discharge limit (> 0).
        round_trip_efficiency: energy out / energy in, 0 < x <= 1 (split evenly both ways).
        inverter_max_w: AC cap of solar + battery output of a hybrid inverter; None = no cap.
    """

    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float
    round_trip_efficiency: float = 0.9
    inverter_max_w: float | None = None

    def __post_init__(self) -> None:
        if not self.capacity_wh > 0:
            raise ValueError("capacity_wh must be > 0")
        if self.max_charge_w < 0 or self.max_discharge_w < 0:
            raise ValueError("power limits must be >= 0")
        if not 0 < self.round_trip_efficiency <= 1:
            raise ValueError("round_trip_efficiency must be within (0, 1]")

    @property
    def eta(self) -> float:
        """One-way efficiency."""
        return math.sqrt(self.round_trip_efficiency)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """What the user allows (docs/api.md, "Settings and what they do on the device").

    Attributes:
        reserve_pct: backup reserve; the plan never goes below it (nor below the SoC it starts
            from, when that is already lower).
        grid_charging: the battery may charge from the grid; else only from solar surplus.
        export_rule: ``battery_ok``, ``pv_only`` (the battery covers at most the home) or
            ``never`` (no export at all).
        wear_cost_per_kwh: cost of one kWh cycled through the battery.
        flap_cost_per_kw: cost of one kW of change between consecutive steps.
        self_consumption_pull_per_kwh: tie-break cost per kWh deviating from self-consumption.
        early_per_kwh: tie-break cost per kWh moved, growing over the horizon.
    """

    reserve_pct: float
    grid_charging: bool
    export_rule: ExportRule
    wear_cost_per_kwh: float = DEFAULT_WEAR_COST_PER_KWH
    flap_cost_per_kw: float = FLAP_COST_PER_KW
    self_consumption_pull_per_kwh: float = SELF_CONSUMPTION_PULL_PER_KWH
    early_per_kwh: float = EARLY_PER_KWH


@dataclass(frozen=True, slots=True, kw_only=True)
class Horizon:
    """Forecasts and prices for each step of the horizon (all tuples the same length).

    Attributes:
        start: aware start of step 0.
        step_s: length of one step in seconds.
        solar_w: mean PV power expected in each step (>= 0).
        load_w: mean home demand expected in each step (>= 0).
        buy: import price per kWh in each step (may be negative).
        sell: export price per kWh in each step (may be negative).
    """

    start: datetime
    step_s: int
    solar_w: tuple[float, ...]
    load_w: tuple[float, ...]
    buy: tuple[float, ...]
    sell: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.solar_w)
        if n == 0 or not (len(self.load_w) == len(self.buy) == len(self.sell) == n):
            raise ValueError("horizon series must be non-empty and of equal length")
        if self.step_s <= 0:
            raise ValueError("step_s must be > 0")
        for name in ("solar_w", "load_w", "buy", "sell"):
            if not all(math.isfinite(v) for v in getattr(self, name)):
                raise ValueError(f"{name} holds a non-finite value")

    @property
    def steps(self) -> int:
        """Number of steps."""
        return len(self.solar_w)

    def step_start(self, index: int) -> datetime:
        """Start of step ``index``."""
        return self.start + timedelta(seconds=self.step_s * index)


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One planning problem: battery, rules, horizon and the measured SoC at its start."""

    battery: Battery
    rules: Rules
    horizon: Horizon
    soc_pct: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanStep:
    """One step of a plan (powers are step means; signs as everywhere in the gateway).

    Attributes:
        start: aware start of the step.
        buy, sell: prices used.
        solar_w, load_w: forecasts used.
        charge_w: planned battery charge power (>= 0).
        discharge_w: planned battery discharge power (>= 0).
        grid_w: planned grid power (+ import / - export).
        curtail_w: solar the plan leaves unused (export rule ``never`` or negative prices).
        soc_pct: planned SoC at the end of the step.
        cost: money paid in this step (negative = earned), wear not included.
    """

    start: datetime
    buy: float
    sell: float
    solar_w: float
    load_w: float
    charge_w: float
    discharge_w: float
    grid_w: float
    curtail_w: float
    soc_pct: float
    cost: float

    @property
    def battery_w(self) -> float:
        """Net planned battery power (+ discharge / - charge)."""
        return self.discharge_w - self.charge_w


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A plan over the horizon and what it is expected to save.

    Attributes:
        kind: ``optimal`` (solved) or ``self_consumption`` (the fallback when it could not be).
        reason: why the fallback was used ("" for an optimal plan).
        steps: the steps.
        cost: expected money paid over the horizon, wear excluded.
        self_consumption_cost: the same horizon under plain self-consumption.
        solve_ms: solver time in milliseconds.
    """

    kind: PlanKind
    reason: str
    steps: tuple[PlanStep, ...]
    cost: float
    self_consumption_cost: float
    solve_ms: float
