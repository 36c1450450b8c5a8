"""What current a charger may draw now: the solar-surplus rule, the off-grid reserve rule, their sum."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

ChargeMode = Literal["full", "solar"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerRating:
    """What a charger and the site's wiring allow: current per phase in A, phases, volts."""

    min_current_a: float = 6.0  # IEC 61851: below 6 A a car does not charge
    max_current_a: float = 16.0
    phases: int = 3
    voltage_v: float = 230.0

    def watts(self, current_a: float) -> float:
        """Power at ``current_a`` on every phase."""
        return current_a * self.phases * self.voltage_v

    def amps(self, power_w: float) -> float:
        """The current per phase that draws ``power_w``."""
        return power_w / (self.phases * self.voltage_v)


@dataclass(frozen=True, slots=True, kw_only=True)
class SolarRule:
    """evcc's "PV" mode: start above ``start_surplus_w``, follow it, stop ``stop_delay_s`` after
    the surplus fell below the minimum current; ``battery_priority_pct``: below this home battery
    SoC the battery's charging is not surplus for the car."""

    start_surplus_w: float = 1400.0
    stop_delay_s: float = 300.0
    battery_priority_pct: float = 50.0


@dataclass(frozen=True, slots=True)
class SolarState:
    """The solar rule's memory: charging or not, and since when the surplus is too short."""

    charging: bool = False
    short_since: datetime | None = None


def surplus_w(*, ev_w: float, grid_w: float, battery_w: float, soc_pct: float | None,
              battery_priority_pct: float) -> float:
    """Power the car could take from solar alone: what it draws now plus what is exported; the
    home battery's flow counts too once its SoC reaches ``battery_priority_pct`` (signs as
    everywhere: ``grid_w`` + importing, ``battery_w`` + discharging)."""
    if soc_pct is not None and soc_pct >= battery_priority_pct:
        return ev_w - grid_w - battery_w
    return ev_w - grid_w - max(battery_w, 0.0)


def follow_surplus(
    available_w: float, state: SolarState, rating: ChargerRating, rule: SolarRule, now: datetime,
) -> tuple[float, SolarState]:
    """The current limit (A, 0 = paused) for ``available_w`` of surplus, and the next state."""
    current = math.floor(rating.amps(max(available_w, 0.0)) * 10) / 10  # down to 0.1 A
    current = min(current, rating.max_current_a)
    if not state.charging:
        if available_w >= max(rule.start_surplus_w, rating.watts(rating.min_current_a)):
            return max(current, rating.min_current_a), SolarState(charging=True)
        return 0.0, state
    if current >= rating.min_current_a:
        return current, replace(state, short_since=None)
    since = state.short_since or now
    if (now - since).total_seconds() >= rule.stop_delay_s:
        return 0.0, SolarState()
    return rating.min_current_a, SolarState(charging=True, short_since=since)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveRule:
    """Off-grid EV reserve: full current above ``reserve + band_pct``, tapering to the minimum
    current at the reserve, 0 at or below it; after a stop, charging resumes only
    ``resume_pct`` above the reserve (or when the grid returns)."""

    band_pct: float = 10.0
    resume_pct: float = 2.0


def outage_limit(
    *, grid_up: bool, soc_pct: float | None, reserve_pct: float, stopped: bool,
    rating: ChargerRating, rule: ReserveRule = ReserveRule(),
) -> tuple[float | None, bool]:
    """The current limit the off-grid reserve allows (None: no limit, the grid is up) and whether
    charging is stopped at the reserve."""
    if grid_up:
        return None, False
    if soc_pct is None:  # an outage with no known SoC: the least a car still charges with
        return rating.min_current_a, stopped
    if soc_pct <= reserve_pct or (stopped and soc_pct < reserve_pct + rule.resume_pct):
        return 0.0, True
    top = reserve_pct + rule.band_pct
    if soc_pct >= top:
        return rating.max_current_a, False
    share = (soc_pct - reserve_pct) / rule.band_pct
    span = rating.max_current_a - rating.min_current_a
    return round(rating.min_current_a + share * span, 1), False


def combined_limit(*limits: float | None, rating: ChargerRating) -> float:
    """The lowest of the limits that apply (None: no opinion), within the charger's rating;
    anything under the minimum current is 0 (a car does not charge below it)."""
    current = min([rating.max_current_a, *(x for x in limits if x is not None)])
    return 0.0 if current < rating.min_current_a else current
