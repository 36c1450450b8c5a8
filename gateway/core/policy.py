"""The control policy: settings, telemetry, tariff, clock and alerts in; device setpoints out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from drivers.base import Setpoints
from gateway.core.planner import Action
from gateway.core.settings import OperationMode, SiteSettings
from gateway.core.tariff import PriceLevel, Tariff

DEFAULT_REVERT_S: Final = 60
"""Battery commands expire after this long (3 x a 20 s poll) unless re-sent, so a dead gateway
leaves the device in self-consumption."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SitePolicyInput:
    """The site's latest state as the policy needs it.

    Attributes:
        soc_pct: battery state of charge 0..100 %, None when unknown (no battery command then).
        solar_w: solar production in W (>= 0).
        load_w: home consumption in W (>= 0).
        grid_up: whether the grid is present.
        max_charge_w: the battery's maximum charge power in W (> 0 magnitude).
        max_discharge_w: the battery's maximum discharge power in W (> 0 magnitude).
    """

    soc_pct: float | None
    solar_w: float
    load_w: float
    grid_up: bool
    max_charge_w: float
    max_discharge_w: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Alerts:
    """Alerts currently active for the site (from devices, an MQTT topic or the admin API).

    Attributes:
        storm: a storm watch alert is in effect.
    """

    storm: bool = False


NO_ALERTS: Final = Alerts()


def storm_mode_active(settings: SiteSettings, alerts: Alerts) -> bool:
    """Whether storm mode is overriding the operation mode (live_status ``storm_mode_active``)."""
    return settings.storm_mode_enabled and alerts.storm


def effective_mode(settings: SiteSettings, alerts: Alerts) -> OperationMode:
    """The operation mode in force: ``backup`` during an active storm alert, else the user's."""
    return "backup" if storm_mode_active(settings, alerts) else settings.operation_mode


def compute_setpoints(
    settings: SiteSettings,
    telemetry: SitePolicyInput,
    tariff: Tariff | None,
    now: datetime,
    alerts: Alerts,
    *,
    revert_s: int = DEFAULT_REVERT_S,
    plan: Action | None = None,
) -> Setpoints:
    """What the site's battery system must do now (docs/api.md, "Settings and what they do on the device").

    Args:
        settings: the user's settings.
        telemetry: the site's latest state.
        tariff: the tariff driving ``autonomous`` (normally ``settings.tariff``); None means
            autonomous falls back to self-consumption.
        now: aware local time of the site (tariff periods are wall-clock).
        alerts: active alerts.
        revert_s: lifetime of a battery command in seconds.
        plan: the planner's action for the current step; in ``autonomous`` it replaces the
            two-level tariff rule (which stays the fallback when there is no plan).

    Returns:
        Setpoints whose ``battery_w`` is + discharge / - charge in W, or None for
        self-consumption under ``reserve_pct``/``grid_charging``/``export_limit_w``.
    """
    export_limit_w = 0 if settings.export_rule == "never" else None
    grid_charging = settings.grid_charging_allowed
    mode = effective_mode(settings, alerts)
    if mode == "backup":
        # A 100 % reserve makes the device fill the battery (from the grid only if allowed)
        # and discharge only during an outage. Storm watch fills it from the grid whatever the
        # grid-charging setting (Tesla's Storm Watch; docs/api.md, "Storm watch"): the outage
        # it prepares for will not wait for the sun.
        if storm_mode_active(settings, alerts):
            grid_charging = True
        return Setpoints(
            reserve_pct=100, grid_charging=grid_charging, export_limit_w=export_limit_w
        )
    battery_w = None
    if mode == "autonomous" and plan is not None:
        return _planned(settings, telemetry, plan, export_limit_w, revert_s)
    if mode == "autonomous" and tariff is not None:
        battery_w = _tariff_command(settings, telemetry, tariff, now)
    if mode == "self_consumption":
        # docs/api.md: self-consumption never charges from the grid, whatever the user allows;
        # the grid-charging permission matters to autonomous and backup.
        grid_charging = False
    return Setpoints(
        reserve_pct=settings.backup_reserve_pct,
        grid_charging=grid_charging,
        export_limit_w=export_limit_w,
        battery_w=battery_w,
        revert_s=revert_s if battery_w is not None else 0,
    )


def _planned(
    settings: SiteSettings,
    telemetry: SitePolicyInput,
    plan: Action,
    export_limit_w: int | None,
    revert_s: int,
) -> Setpoints:
    """Setpoints for the planner's current step, never looser than what the user set."""
    reserve = settings.backup_reserve_pct
    grid_charging = settings.grid_charging_allowed
    if plan.curtail:
        export_limit_w = 0
    if not telemetry.grid_up or telemetry.soc_pct is None:
        # Same as the tariff rule: an outage or an unknown SoC leaves the device to itself.
        return Setpoints(reserve_pct=reserve, grid_charging=grid_charging, export_limit_w=export_limit_w)
    battery_w = plan.battery_w
    if plan.kind == "hold" and plan.reserve_pct is not None:
        reserve = max(reserve, plan.reserve_pct)
    if plan.kind in {"hold", "limit_charge"}:
        # A raised reserve must not make the device fill up to it from the grid, nor a capped
        # charge command draw on the grid.
        grid_charging = False
    if battery_w is not None and battery_w < 0:
        battery_w = -min(-battery_w, round(telemetry.max_charge_w))
        if plan.kind == "charge" and not grid_charging:
            battery_w = None
    elif battery_w is not None and battery_w > 0:
        if settings.export_rule != "battery_ok" or telemetry.soc_pct <= settings.backup_reserve_pct:
            battery_w = None
        else:
            battery_w = min(battery_w, round(telemetry.max_discharge_w))
    return Setpoints(
        reserve_pct=reserve,
        grid_charging=grid_charging,
        export_limit_w=export_limit_w,
        battery_w=battery_w,
        revert_s=revert_s if battery_w is not None else 0,
    )


def _tariff_command(
    settings: SiteSettings, telemetry: SitePolicyInput, tariff: Tariff, now: datetime
) -> int | None:
    soc = telemetry.soc_pct
    # During an outage the device serves the home on its own; with no SoC we cannot respect
    # the reserve or "until full".
    if not telemetry.grid_up or soc is None:
        return None
    level = tariff.buy_level(now)
    if level is PriceLevel.CHEAP:
        if settings.grid_charging_allowed and soc < 100 and telemetry.max_charge_w > 0:
            return -round(telemetry.max_charge_w)
        return None
    if level is not PriceLevel.EXPENSIVE or soc <= settings.backup_reserve_pct:
        return None
    if settings.export_rule == "never":
        # Self-consumption already covers the deficit after solar; a load-sized command would
        # only curtail solar under the 0 W export limit.
        return None
    if settings.export_rule == "battery_ok" and tariff.sell_level(now) is PriceLevel.EXPENSIVE:
        return round(telemetry.max_discharge_w) if telemetry.max_discharge_w > 0 else None
    # pv_only, or battery_ok without a high sell price: cover the home, so the battery never
    # pushes its own energy past the home and solar exports instead.
    cover_w = round(min(max(telemetry.load_w, 0.0), telemetry.max_discharge_w))
    return cover_w if cover_w > 0 else None
