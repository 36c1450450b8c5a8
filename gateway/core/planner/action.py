"""What the device must do during the plan's current step: a mode, a power and the limits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from gateway.core.planner.problem import Battery, PlanStep, Rules

ActionKind = Literal["self_consumption", "charge", "discharge", "hold", "limit_charge"]

MIN_TOLERANCE_W: Final = 100.0
"""Planned powers within this of what self-consumption would do anyway are self-consumption:
the device's own fast control follows the home better than a fixed setpoint (no flapping)."""
TOLERANCE_SHARE: Final = 0.05
"""... or within this share of the battery's power rating, whichever is larger."""
PRICE_REASON: Final = 0.01
"""Holding energy back (or room free) needs a later price at least this much better per kWh:
without one, the plan's timing is a tie and self-consumption's is the robust choice."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """The planner's command for one step, before the policy merges it with the user's settings.

    Attributes:
        kind: ``self_consumption`` (the device follows the home), ``charge`` (from the grid at
            ``battery_w``), ``discharge`` (at ``battery_w``, exporting), ``hold`` (keep the
            energy for later: the reserve is raised to the SoC, solar may still charge), or
            ``limit_charge`` (charge from solar at most ``-battery_w``, export the rest).
        battery_w: + discharge / - charge command in W, or None.
        reserve_pct: raised reserve for ``hold``, else None (the user's reserve).
        grid_charging: the battery charges from the grid in this step.
        curtail: the plan curtails solar (export limited to 0 W in this step).
    """

    kind: ActionKind
    battery_w: int | None = None
    reserve_pct: int | None = None
    grid_charging: bool = False
    curtail: bool = False


SELF_CONSUMPTION: Final = Action(kind="self_consumption")


def tolerance_w(battery: Battery) -> float:
    """Planned deviations from self-consumption smaller than this are not acted on."""
    return max(MIN_TOLERANCE_W, TOLERANCE_SHARE * max(battery.max_charge_w, battery.max_discharge_w))


def action_for(
    step: PlanStep, soc_pct: float, battery: Battery, rules: Rules, later: Sequence[PlanStep] = ()
) -> Action:
    """Turn the plan's current step into a device command.

    Args:
        step: the plan's step now in progress.
        soc_pct: the measured SoC (the ``hold`` reserve is taken from it).
        battery: the battery the plan was made for.
        rules: the user's rules the plan was made under.
        later: the plan's following steps: ``hold`` and ``limit_charge`` are used only when
            one of them gives the reason (a dearer step to discharge in, a cheaper one to
            charge in); a plan that merely times things differently at equal prices is left to
            self-consumption, which is robust to forecast errors.
    """
    tol = tolerance_w(battery)
    surplus = max(step.solar_w - step.load_w, 0.0)
    deficit = max(step.load_w - step.solar_w, 0.0)
    curtail = step.curtail_w > tol and rules.export_rule != "never"
    if rules.grid_charging and step.charge_w > surplus + tol:
        return Action(kind="charge", battery_w=-round(step.charge_w), grid_charging=True, curtail=curtail)
    if rules.export_rule == "battery_ok" and step.discharge_w > deficit + tol:
        return Action(kind="discharge", battery_w=round(step.discharge_w), curtail=curtail)
    dearer = any(s.discharge_w > tol and s.buy > step.buy + PRICE_REASON for s in later)
    cheaper = any(s.charge_w > tol and _charge_price(s) < step.sell - PRICE_REASON for s in later)
    if deficit > tol and step.discharge_w < deficit / 2 and step.charge_w <= tol and dearer:
        # Keep what is stored for a dearer step later; solar surplus may still charge.
        hold = max(math.ceil(rules.reserve_pct), math.floor(soc_pct))
        return Action(kind="hold", reserve_pct=min(100, hold), curtail=curtail)
    if surplus > tol and step.charge_w < surplus / 2 and step.discharge_w <= tol and cheaper:
        return Action(kind="limit_charge", battery_w=-round(step.charge_w), curtail=curtail)
    return Action(kind="self_consumption", curtail=curtail)


def _charge_price(step: PlanStep) -> float:
    """What a kWh charged in ``step`` costs: the buy price when it comes from the grid, the
    forgone export price when it comes from solar."""
    from_grid = step.charge_w > max(step.solar_w - step.load_w, 0.0)
    return step.buy if from_grid else step.sell
