"""The plan endpoint's body: the planner's current plan, step by step, and what it expects to save."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from gateway.core.planner import Plan
from gateway.runtime.planner import PlannerService
from gateway.web.renderers.models import Timestamp, rfc3339


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanStepBody(_Model):
    """One step: prices and forecasts used, planned battery/grid power and SoC at its end."""

    start: Timestamp
    buy_price: float
    sell_price: float
    solar_w: float
    load_w: float
    battery_w: float
    grid_w: float
    curtail_w: float
    soc_pct: float
    cost: float


class PlanAction(_Model):
    """What the devices are told during the current step."""

    kind: Literal["self_consumption", "charge", "discharge", "hold", "limit_charge"]
    battery_w: int | None
    reserve_pct: int | None
    grid_charging: bool
    curtail: bool


class PlanBody(_Model):
    """The site's plan (docs/api.md, "The plan")."""

    operation_mode: str
    strategy: Literal["optimiser", "tou_rule"]
    status: Literal["planned", "fallback", "inactive", "pending"]
    reason: str
    planned_at: Timestamp | None
    step_min: int
    horizon_h: float
    action: PlanAction | None
    expected_cost: float | None
    self_consumption_cost: float | None
    expected_saving: float | None
    solve_ms: float | None
    feeds: dict[str, str | None]
    pv_correction: float
    load_days_learned: int
    steps: list[PlanStepBody]


class PlanResponse(_Model):
    """``GET /api/1/energy_sites/{id}/plan``."""

    response: PlanBody


def plan_body(service: PlannerService) -> PlanResponse:
    """The plan as the service holds it now."""
    site = service.site
    tz = site.tz
    config = service.config
    plan: Plan | None = service.plan
    action = site.plan_action
    if site.settings.operation_mode != "autonomous" or config.strategy != "optimiser":
        status: Literal["planned", "fallback", "inactive", "pending"] = "inactive"
    elif plan is None:
        status = "pending" if action is None else "fallback"
    else:
        status = "planned" if plan.kind == "optimal" else "fallback"
    steps = [] if plan is None else [
        PlanStepBody.model_construct(
            start=rfc3339(s.start, tz), buy_price=s.buy, sell_price=s.sell,
            solar_w=round(s.solar_w, 1), load_w=round(s.load_w, 1), battery_w=round(s.battery_w, 1),
            grid_w=round(s.grid_w, 1), curtail_w=round(s.curtail_w, 1), soc_pct=round(s.soc_pct, 2),
            cost=round(s.cost, 5),
        )
        for s in plan.steps
    ]
    return PlanResponse.model_construct(response=PlanBody.model_construct(
        operation_mode=site.settings.operation_mode,
        strategy=config.strategy,
        status=status,
        reason=plan.reason if plan is not None else service.fallback_reason,
        planned_at=rfc3339(service.planned_at, tz) if service.planned_at is not None else None,
        step_min=config.step_min,
        horizon_h=config.horizon_h,
        action=None if action is None else PlanAction.model_construct(
            kind=action.kind, battery_w=action.battery_w, reserve_pct=action.reserve_pct,
            grid_charging=action.grid_charging, curtail=action.curtail,
        ),
        expected_cost=round(plan.cost, 4) if plan is not None else None,
        self_consumption_cost=round(plan.self_consumption_cost, 4) if plan is not None else None,
        expected_saving=round(plan.self_consumption_cost - plan.cost, 4) if plan is not None else None,
        solve_ms=round(plan.solve_ms, 2) if plan is not None else None,
        feeds=service.feed_status(),
        pv_correction=round(service.learned.pv_correction.factor, 4),
        load_days_learned=service.learned.load.days,
        steps=steps,
    ))
