"""The rolling-horizon optimisation: a linear programme over the horizon, solved with HiGHS."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Final

from gateway.core.planner.problem import Horizon, Plan, PlanStep, Problem

DEFAULT_TIME_LIMIT_S: Final = 2.0
"""A plan not solved within this falls back to self-consumption (a step is 15-30 min)."""
TERMINAL_VALUE_SHARE: Final = 0.9
"""Energy left at the horizon's end is worth this share of what it saves at the cheapest buy
price: enough not to dump it in the last steps, never more than using it within the horizon."""

_INF: Final = math.inf  # HiGHS reads any bound >= 1e20 as infinite
# Variable blocks, one entry per step each: charge, discharge, import, export, curtailment, energy
# at the end of the step, |change of battery power| (the flap term) and |difference from what
# self-consumption would do| (the pull term).
_C, _D, _IMP, _EXP, _CUR, _E, _R, _V = range(8)
_BLOCKS: Final = 8

if TYPE_CHECKING:
    import numpy.typing as npt

    Floats = npt.NDArray[Any]


def solve(problem: Problem, *, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> Plan:
    """The cheapest plan for ``problem``, or the self-consumption plan with the reason it was used.

    Never raises for a well-formed problem: a solver failure, an infeasible model or a time-out
    returns ``kind="self_consumption"`` and ``reason`` saying which.
    """
    started = time.perf_counter()
    baseline = self_consumption_plan(problem, reason="")
    try:
        values = _solve_lp(problem, time_limit_s)
    except (RuntimeError, ValueError) as exc:  # highspy raises these for bad models
        values = f"solver error: {exc}"
    elapsed_ms = (time.perf_counter() - started) * 1000
    if isinstance(values, str):
        return Plan(
            kind="self_consumption",
            reason=values,
            steps=baseline.steps,
            cost=baseline.cost,
            self_consumption_cost=baseline.cost,
            solve_ms=elapsed_ms,
        )
    steps = _steps_from(problem, values)
    return Plan(
        kind="optimal",
        reason="",
        steps=steps,
        cost=sum(s.cost for s in steps),
        self_consumption_cost=baseline.cost,
        solve_ms=elapsed_ms,
    )


def terminal_value_per_wh(problem: Problem) -> float:
    """What one Wh left in the battery at the horizon's end is worth to the objective."""
    battery, horizon = problem.battery, problem.horizon
    wear_out = problem.rules.wear_cost_per_kwh / 2
    return TERMINAL_VALUE_SHARE * max(0.0, min(horizon.buy) * battery.eta - wear_out) / 1000


def _solve_lp(problem: Problem, time_limit_s: float) -> Floats | str:
    # Imported here: numpy and the solver cost ~0.2 s to load, which `--help`, `check-config`
    # and a gateway that never plans need not pay.
    import highspy
    import numpy as np

    battery, rules, horizon = problem.battery, problem.rules, problem.horizon
    n = horizon.steps
    dt_h = horizon.step_s / 3600
    kwh = dt_h / 1000  # W over one step -> kWh
    eta = battery.eta
    pv = np.asarray(horizon.solar_w, dtype=np.float64).clip(min=0)
    load = np.asarray(horizon.load_w, dtype=np.float64).clip(min=0)
    buy = np.asarray(horizon.buy, dtype=np.float64)
    sell = np.asarray(horizon.sell, dtype=np.float64)
    big = pv + load + battery.max_charge_w + battery.max_discharge_w
    # Two things the meter and the inverter cannot do at once would look like free money to an
    # LP: importing while exporting where export pays more than import costs, and curtailing
    # solar while importing at a negative price (a device only curtails what it would export).
    # A binary per such step makes them exclusive: the only integer part, rare in practice.
    exclusive = [(t, _IMP, _EXP) for t in range(n) if sell[t] > buy[t]]
    # (Not where the inverter must clip solar anyway: there curtailing while importing is real.)
    clip_free = pv <= (battery.inverter_max_w if battery.inverter_max_w is not None else _INF)
    exclusive += [(t, _IMP, _CUR) for t in range(n) if buy[t] < 0 < pv[t] and clip_free[t]]
    surplus = np.maximum(pv - load, 0.0)
    deficit = np.maximum(load - pv, 0.0)
    cap = battery.capacity_wh
    e0 = min(max(problem.soc_pct, 0.0), 100.0) / 100 * cap
    floor = min(rules.reserve_pct / 100 * cap, e0)

    lower = np.zeros((_BLOCKS, n))
    upper = np.full((_BLOCKS, n), _INF)
    cost = np.zeros((_BLOCKS, n))
    upper[_C] = battery.max_charge_w if rules.grid_charging else np.minimum(battery.max_charge_w, surplus)
    upper[_D] = battery.max_discharge_w
    if rules.export_rule != "battery_ok":
        # The battery covers at most the home: whatever is exported is solar.
        upper[_D] = np.minimum(battery.max_discharge_w, deficit)
    if rules.export_rule == "never":
        upper[_EXP] = 0.0
    elif rules.export_rule == "pv_only":
        upper[_EXP] = surplus
    upper[_CUR] = pv
    lower[_E] = floor
    upper[_E] = cap
    upper[_R, 0] = 0.0
    wear = rules.wear_cost_per_kwh / 2 * kwh
    later = rules.early_per_kwh * kwh * np.arange(n) / n
    cost[_C] = wear + later
    cost[_D] = wear + later
    cost[_IMP] = buy * kwh
    cost[_EXP] = -sell * kwh
    cost[_R, 1:] = rules.flap_cost_per_kw / 1000
    cost[_V] = rules.self_consumption_pull_per_kwh * kwh
    cost[_E, n - 1] = -terminal_value_per_wh(problem)
    # What self-consumption would charge (+) or discharge (-) in each step, SoC permitting.
    own = np.minimum(surplus, battery.max_charge_w) - np.minimum(deficit, battery.max_discharge_w)

    def col(block: int, t: int) -> int:
        return block * n + t

    rows: list[tuple[list[int], list[float], float, float]] = []
    for t in range(n):
        rows.append(
            (
                [col(_C, t), col(_D, t), col(_IMP, t), col(_EXP, t), col(_CUR, t)],
                [-1.0, 1.0, 1.0, -1.0, -1.0],
                load[t] - pv[t],
                load[t] - pv[t],
            )
        )
        idx = [col(_E, t), col(_C, t), col(_D, t)]
        val = [1.0, -eta * dt_h, dt_h / eta]
        rhs = e0 if t == 0 else 0.0
        if t > 0:
            idx.append(col(_E, t - 1))
            val.append(-1.0)
        rows.append((idx, val, rhs, rhs))
        if battery.inverter_max_w is not None:
            rows.append(
                (
                    [col(_C, t), col(_D, t), col(_CUR, t)],
                    [-1.0, 1.0, -1.0],
                    -_INF,
                    battery.inverter_max_w - pv[t],
                )
            )
        # v >= |(charge - discharge) - own|
        pull = [col(_V, t), col(_C, t), col(_D, t)]
        rows.append((pull, [1.0, -1.0, 1.0], -own[t], _INF))
        rows.append((pull, [1.0, 1.0, -1.0], own[t], _INF))
        if t > 0:
            change = [col(_D, t), col(_C, t), col(_D, t - 1), col(_C, t - 1)]
            rows.append(([col(_R, t), *change], [1.0, -1.0, 1.0, 1.0, -1.0], 0.0, _INF))
            rows.append(([col(_R, t), *change], [1.0, 1.0, -1.0, -1.0, 1.0], 0.0, _INF))

    # The core class, not highspy.Highs: that wrapper's constructor already calls into HiGHS,
    # which prints its banner on stdout before output_flag can be set (HiGHS issue #2749), and
    # stdout carries the gateway's JSON log lines.
    h = highspy._core._Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("threads", 1)
    num_cols = _BLOCKS * n
    h.addCols(
        num_cols,
        cost.ravel(),
        lower.ravel(),
        np.maximum(lower, upper).ravel(),
        0,
        np.array([], dtype=np.int32),
        np.array([], dtype=np.int32),
        np.array([], dtype=np.float64),
    )
    starts = np.zeros(len(rows), dtype=np.int32)
    indices: list[int] = []
    values: list[float] = []
    for i, (idx, val, _lo, _hi) in enumerate(rows):
        starts[i] = len(indices)
        indices.extend(idx)
        values.extend(val)
    h.addRows(
        len(rows),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.float64),
        len(indices),
        starts,
        np.array(indices, dtype=np.int32),
        np.array(values, dtype=np.float64),
    )
    if exclusive:
        count = len(exclusive)
        h.addCols(
            count,
            np.zeros(count),
            np.zeros(count),
            np.ones(count),
            0,
            np.array([], dtype=np.int32),
            np.array([], dtype=np.int32),
            np.array([], dtype=np.float64),
        )
        for k, (t, first, second) in enumerate(exclusive):
            y = num_cols + k
            h.changeColIntegrality(y, highspy.HighsVarType.kInteger)
            # first <= big * y ; second <= big * (1 - y)
            h.addRow(-_INF, 0.0, 2, np.array([col(first, t), y], dtype=np.int32), np.array([1.0, -big[t]]))
            h.addRow(-_INF, big[t], 2, np.array([col(second, t), y], dtype=np.int32), np.array([1.0, big[t]]))
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        return f"solver status: {h.modelStatusToString(status)}"
    solution = np.asarray(h.getSolution().col_value, dtype=np.float64)
    return solution[:num_cols].reshape(_BLOCKS, n)


def _steps_from(problem: Problem, x: Floats) -> tuple[PlanStep, ...]:
    horizon, cap = problem.horizon, problem.battery.capacity_wh
    out = []
    for t in range(horizon.steps):
        charge = max(0.0, float(x[_C, t]))
        discharge = max(0.0, float(x[_D, t]))
        curtail = max(0.0, float(x[_CUR, t]))
        grid = horizon.load_w[t] - (max(horizon.solar_w[t], 0.0) - curtail) + charge - discharge
        soc_pct = 100 * float(x[_E, t]) / cap
        out.append(
            _step(horizon, t, charge=charge, discharge=discharge, curtail=curtail, grid=grid, soc_pct=soc_pct)
        )
    return tuple(out)


def _step(
    horizon: Horizon,
    t: int,
    *,
    charge: float,
    discharge: float,
    curtail: float,
    grid: float,
    soc_pct: float,
) -> PlanStep:
    kwh = horizon.step_s / 3600 / 1000
    buy, sell = horizon.buy[t], horizon.sell[t]
    cost = (buy * max(grid, 0.0) - sell * max(-grid, 0.0)) * kwh
    return PlanStep(
        start=horizon.step_start(t),
        buy=buy,
        sell=sell,
        solar_w=max(horizon.solar_w[t], 0.0),
        load_w=max(horizon.load_w[t], 0.0),
        charge_w=charge,
        discharge_w=discharge,
        grid_w=grid,
        curtail_w=curtail,
        soc_pct=min(100.0, max(0.0, soc_pct)),
        cost=cost,
    )


def self_consumption_plan(problem: Problem, *, reason: str) -> Plan:
    """What plain self-consumption would do over the horizon (the baseline and the fallback)."""
    battery, rules, horizon = problem.battery, problem.rules, problem.horizon
    dt_h = horizon.step_s / 3600
    cap = battery.capacity_wh
    energy = min(max(problem.soc_pct, 0.0), 100.0) / 100 * cap
    floor = min(rules.reserve_pct / 100 * cap, energy)
    steps = []
    for t in range(horizon.steps):
        pv = max(horizon.solar_w[t], 0.0)
        load = max(horizon.load_w[t], 0.0)
        charge = discharge = curtail = 0.0
        if pv >= load:
            charge = min(pv - load, battery.max_charge_w, (cap - energy) / dt_h / battery.eta)
        else:
            discharge = min(load - pv, battery.max_discharge_w, (energy - floor) * battery.eta / dt_h)
        charge, discharge = max(charge, 0.0), max(discharge, 0.0)
        over = (
            pv - charge + discharge - (battery.inverter_max_w if battery.inverter_max_w is not None else _INF)
        )
        if over > 0:
            # The inverter's AC cap clips battery output first, then solar.
            cut = min(over, discharge)
            discharge -= cut
            curtail = over - cut
        energy += charge * dt_h * battery.eta - discharge * dt_h / battery.eta
        grid = load - (pv - curtail) + charge - discharge
        if rules.export_rule == "never" and grid < 0:
            curtail, grid = curtail - grid, 0.0
        steps.append(
            _step(
                horizon,
                t,
                charge=charge,
                discharge=discharge,
                curtail=curtail,
                grid=grid,
                soc_pct=100 * energy / cap,
            )
        )
    total = sum(s.cost for s in steps)
    return Plan(
        kind="self_consumption",
        reason=reason,
        steps=tuple(steps),
        cost=total,
        self_consumption_cost=total,
        solve_ms=0.0,
    )
