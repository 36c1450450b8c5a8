"""The autonomous planner: the cheapest battery schedule over the next hours, and its current step."""

from gateway.core.planner.action import SELF_CONSUMPTION, Action, ActionKind, action_for, tolerance_w
from gateway.core.planner.problem import (
    DEFAULT_WEAR_COST_PER_KWH,
    Battery,
    Horizon,
    Plan,
    PlanStep,
    Problem,
    Rules,
)
from gateway.core.planner.solve import self_consumption_plan, solve

__all__ = [
    "DEFAULT_WEAR_COST_PER_KWH",
    "SELF_CONSUMPTION",
    "Action",
    "ActionKind",
    "Battery",
    "Horizon",
    "Plan",
    "PlanStep",
    "Problem",
    "Rules",
    "action_for",
    "self_consumption_plan",
    "solve",
    "tolerance_w",
]
