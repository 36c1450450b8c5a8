"""The planner's LP: hand-solvable cases, an independent dynamic programme, and its constraints."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import Setpoints
from gateway.core.planner import Action, Battery, Horizon, Plan, PlanStep, Problem, Rules, action_for, solve
from gateway.core.planner.solve import self_consumption_plan, terminal_value_per_wh
from gateway.core.policy import NO_ALERTS, SitePolicyInput, compute_setpoints
from gateway.core.settings import ExportRule, SiteSettings

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def problem(
    *,
    solar: list[float],
    load: list[float],
    buy: list[float],
    sell: list[float] | None = None,
    soc: float = 0.0,
    reserve: float = 0.0,
    grid_charging: bool = True,
    export_rule: ExportRule = "battery_ok",
    capacity_wh: float = 10_000,
    max_w: float = 5000,
    rte: float = 1.0,
    wear: float = 0.0,
    inverter_max_w: float | None = None,
    step_s: int = 3600,
) -> Problem:
    return Problem(
        battery=Battery(
            capacity_wh=capacity_wh,
            max_charge_w=max_w,
            max_discharge_w=max_w,
            round_trip_efficiency=rte,
            inverter_max_w=inverter_max_w,
        ),
        rules=Rules(
            reserve_pct=reserve,
            grid_charging=grid_charging,
            export_rule=export_rule,
            wear_cost_per_kwh=wear,
            flap_cost_per_kw=0.0,
            self_consumption_pull_per_kwh=0.0,
            early_per_kwh=0.0,
        ),
        horizon=Horizon(
            start=T0,
            step_s=step_s,
            solar_w=tuple(solar),
            load_w=tuple(load),
            buy=tuple(buy),
            sell=tuple(sell if sell is not None else [0.0] * len(buy)),
        ),
        soc_pct=soc,
    )


def objective(p: Problem, plan: Plan) -> float:
    """The LP's objective recomputed from the plan (no flap term, no bonus: the tests set them 0)."""
    dt_h = p.horizon.step_s / 3600
    total = 0.0
    for step in plan.steps:
        total += (step.buy * max(step.grid_w, 0) - step.sell * max(-step.grid_w, 0)) * dt_h / 1000
        total += p.rules.wear_cost_per_kwh / 2 * (step.charge_w + step.discharge_w) * dt_h / 1000
    end_wh = plan.steps[-1].soc_pct / 100 * p.battery.capacity_wh
    return total - terminal_value_per_wh(p) * end_wh


# --- hand-solvable cases --------------------------------------------------------------------------


def test_charges_cheap_for_the_dear_step_and_no_more() -> None:
    p = problem(solar=[0, 0], load=[1000, 1000], buy=[0.1, 0.5])
    plan = solve(p)
    assert plan.kind == "optimal"
    assert [round(s.charge_w) for s in plan.steps] == [1000, 0]
    assert [round(s.discharge_w) for s in plan.steps] == [0, 1000]
    assert [round(s.grid_w) for s in plan.steps] == [2000, 0]
    assert plan.cost == pytest.approx(0.2)
    assert plan.self_consumption_cost == pytest.approx(0.6)


def test_losses_make_it_buy_more_to_cover_the_same_step() -> None:
    # rte 0.81: 0.9 each way; 900 W out of the battery needs 1000 Wh stored, 1111 Wh bought.
    plan = solve(problem(solar=[0, 0], load=[0, 900], buy=[0.1, 0.5], rte=0.81))
    assert plan.steps[0].charge_w == pytest.approx(1000 / 0.9, rel=1e-6)
    assert plan.steps[1].discharge_w == pytest.approx(900, rel=1e-6)
    assert plan.cost == pytest.approx(0.1 * 1000 / 0.9 / 1000, rel=1e-6)


def test_no_grid_charging_means_no_arbitrage_from_the_grid() -> None:
    plan = solve(problem(solar=[0, 0], load=[1000, 1000], buy=[0.1, 0.5], grid_charging=False))
    assert all(s.charge_w == pytest.approx(0, abs=1e-6) for s in plan.steps)
    assert plan.cost == pytest.approx(0.6)


def test_spread_smaller_than_the_losses_is_left_alone() -> None:
    # 0.30 -> 0.32 with a 0.81 round trip: buying 1 kWh at 0.30 saves 0.81 x 0.32 = 0.26.
    plan = solve(problem(solar=[0, 0], load=[1000, 1000], buy=[0.30, 0.32], rte=0.81))
    assert all(s.charge_w == pytest.approx(0, abs=1e-6) for s in plan.steps)


def test_wear_cost_stops_a_thin_arbitrage() -> None:
    base = solve(problem(solar=[0, 0], load=[1000, 1000], buy=[0.30, 0.33]))
    assert base.steps[0].charge_w == pytest.approx(1000)
    worn = solve(problem(solar=[0, 0], load=[1000, 1000], buy=[0.30, 0.33], wear=0.1))
    assert worn.steps[0].charge_w == pytest.approx(0, abs=1e-6)


def test_never_below_the_reserve() -> None:
    plan = solve(problem(solar=[0] * 3, load=[2000] * 3, buy=[0.3] * 3, soc=50, reserve=40))
    assert min(s.soc_pct for s in plan.steps) == pytest.approx(40)
    assert sum(s.discharge_w for s in plan.steps) == pytest.approx(1000)  # 10 % of 10 kWh in all


def test_a_battery_below_its_reserve_is_not_planned_lower() -> None:
    plan = solve(
        problem(solar=[0] * 2, load=[2000] * 2, buy=[0.3] * 2, soc=10, reserve=40, grid_charging=False)
    )
    assert plan.kind == "optimal"
    assert all(s.soc_pct == pytest.approx(10) for s in plan.steps)


def test_export_rule_never_curtails_what_the_full_battery_cannot_take() -> None:
    plan = solve(problem(solar=[3000], load=[1000], buy=[0.3], sell=[0.1], soc=100, export_rule="never"))
    step = plan.steps[0]
    assert step.grid_w == pytest.approx(0, abs=1e-6)
    assert step.curtail_w == pytest.approx(2000)


@pytest.mark.parametrize(("rule", "discharge"), [("battery_ok", 5000), ("pv_only", 0), ("never", 0)])
def test_only_battery_ok_exports_the_battery(rule: ExportRule, discharge: float) -> None:
    plan = solve(problem(solar=[0], load=[0], buy=[0.3], sell=[0.3], soc=100, export_rule=rule))
    assert plan.steps[0].discharge_w == pytest.approx(discharge, abs=1e-6)


def test_negative_prices_pay_to_charge_from_the_grid_and_never_export() -> None:
    plan = solve(problem(solar=[2000], load=[500], buy=[-0.05], sell=[-0.1], soc=0))
    step = plan.steps[0]
    assert step.charge_w == pytest.approx(5000)  # full power, paid for the import
    assert step.curtail_w == pytest.approx(0, abs=1e-6)  # no curtailing while importing
    assert step.grid_w == pytest.approx(3500)
    sunny = solve(problem(solar=[6000], load=[500], buy=[0.1], sell=[-0.1], soc=100)).steps[0]
    assert sunny.grid_w == pytest.approx(0, abs=1e-6)
    assert sunny.curtail_w == pytest.approx(5500)


def test_inverter_cap_limits_solar_plus_discharge() -> None:
    plan = solve(
        problem(
            solar=[4000],
            load=[0],
            buy=[0.3],
            sell=[0.3],
            soc=100,
            inverter_max_w=5000,
            capacity_wh=10_000,
        )
    )
    step = plan.steps[0]
    assert step.solar_w - step.curtail_w + step.discharge_w - step.charge_w <= 5000 + 1e-6
    assert step.discharge_w == pytest.approx(1000)


def test_time_out_falls_back_to_self_consumption_and_says_why() -> None:
    p = problem(solar=[0] * 96, load=[1000] * 96, buy=[0.1, 0.5] * 48, step_s=900)
    plan = solve(p, time_limit_s=0.0)
    assert plan.kind == "self_consumption"
    assert "time limit" in plan.reason.lower() or "status" in plan.reason
    assert plan.steps == self_consumption_plan(p, reason="").steps


# --- an independent solution: dynamic programming over a grid of stored energy -------------------


def dp_optimum(p: Problem, grid_wh: float) -> float:
    """Best objective by DP over stored energy in steps of ``grid_wh`` (exact when the LP's
    optimum lies on that grid)."""
    b, r, h = p.battery, p.rules, p.horizon
    dt_h = h.step_s / 3600
    eta = math.sqrt(b.round_trip_efficiency)
    levels = [i * grid_wh for i in range(round(b.capacity_wh / grid_wh) + 1)]
    e0 = p.soc_pct / 100 * b.capacity_wh
    floor = min(r.reserve_pct / 100 * b.capacity_wh, e0)
    value = 0.9 * max(0.0, min(h.buy) * eta - r.wear_cost_per_kwh / 2) / 1000

    def step_cost(t: int, e: float, e_next: float) -> float | None:
        pv, load = h.solar_w[t], h.load_w[t]
        surplus, deficit = max(pv - load, 0.0), max(load - pv, 0.0)
        delta = e_next - e
        charge = delta / eta / dt_h if delta > 0 else 0.0
        discharge = -delta * eta / dt_h if delta < 0 else 0.0
        eps = 1e-9
        if charge > b.max_charge_w + eps or discharge > b.max_discharge_w + eps:
            return None
        if not r.grid_charging and charge > surplus + eps:
            return None
        if r.export_rule != "battery_ok" and discharge > deficit + eps:
            return None
        grid = load - pv + charge - discharge
        buy, sell = h.buy[t], h.sell[t]
        export = max(-grid, 0.0)
        if r.export_rule == "never" or sell < 0:
            curtail = min(export, pv)
            if r.export_rule == "never" and export > pv + eps:
                return None
            export -= curtail
        money = buy * max(grid, 0.0) - sell * export
        wear = r.wear_cost_per_kwh / 2 * (charge + discharge)
        return (money + wear) * dt_h / 1000

    best = {e0: 0.0}
    for t in range(h.steps):
        nxt: dict[float, float] = {}
        for e, so_far in best.items():
            for e_next in levels:
                if e_next < floor - 1e-9:
                    continue
                cost = step_cost(t, e, e_next)
                if cost is not None and so_far + cost < nxt.get(e_next, math.inf):
                    nxt[e_next] = so_far + cost
        best = nxt
    return min(c - value * e for c, e in ((c, e) for e, c in best.items()))


Case = tuple[list[float], list[float], list[float], list[float], float, float, bool, ExportRule]
CASES: list[Case] = [
    # (solar, load, buy, sell, soc, reserve, grid_charging, export_rule)
    ([0, 0, 0, 0], [1000, 500, 1500, 1000], [0.1, 0.2, 0.5, 0.3], [0.0] * 4, 20, 20, True, "battery_ok"),
    ([0, 3000, 4000, 0], [500, 500, 1000, 2000], [0.3] * 4, [0.05] * 4, 20, 10, False, "pv_only"),
    (
        [0, 3000, 4000, 0, 0],
        [500, 500, 1000, 2000, 500],
        [0.2, 0.3, 0.3, 0.6, 0.2],
        [0.1, 0.0, -0.1, 0.4, 0.1],
        50,
        20,
        True,
        "battery_ok",
    ),
    (
        [5000, 5000, 0, 0],
        [0, 500, 1000, 1000],
        [0.3, -0.05, 0.4, 0.4],
        [0.08, -0.2, 0.1, 0.1],
        80,
        0,
        True,
        "never",
    ),
    ([0, 0, 2000, 2000, 0, 0], [1000] * 6, [0.1, 0.1, 0.3, 0.3, 0.6, 0.6], [0.05] * 6, 0, 0, True, "pv_only"),
]


@pytest.mark.parametrize(("wear", "rte"), [(0.0, 1.0), (0.04, 1.0)])
@pytest.mark.parametrize("case", CASES)
def test_lp_matches_dynamic_programming_on_small_horizons(
    case: Case, wear: float, rte: float
) -> None:
    solar, load, buy, sell, soc, reserve, grid_charging, rule = case
    p = problem(
        solar=solar,
        load=load,
        buy=buy,
        sell=sell,
        soc=soc,
        reserve=reserve,
        grid_charging=grid_charging,
        export_rule=rule,
        capacity_wh=4000,
        max_w=2000,
        rte=rte,
        wear=wear,
    )
    plan = solve(p)
    assert plan.kind == "optimal"
    assert objective(p, plan) == pytest.approx(dp_optimum(p, 100.0), abs=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_lp_is_never_worse_than_dp_with_losses(case: Case) -> None:
    solar, load, buy, sell, soc, reserve, grid_charging, rule = case
    p = problem(
        solar=solar,
        load=load,
        buy=buy,
        sell=sell,
        soc=soc,
        reserve=reserve,
        grid_charging=grid_charging,
        export_rule=rule,
        capacity_wh=4000,
        max_w=2000,
        rte=0.9,
        wear=0.02,
    )
    lp = objective(p, solve(p))
    dp = dp_optimum(p, 50.0)
    # The DP is restricted to a grid, so it can only be worse; a fine grid comes close.
    assert lp <= dp + 1e-9
    assert dp - lp < 0.02


# --- properties: the user's rules hold in every plan and every command -------------------------

powers = st.lists(st.floats(0, 6000, allow_nan=False), min_size=2, max_size=8)
prices = st.floats(-0.2, 0.8, allow_nan=False)


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    solar = draw(powers)
    n = len(solar)
    load = draw(st.lists(st.floats(0, 6000, allow_nan=False), min_size=n, max_size=n))
    buy = draw(st.lists(prices, min_size=n, max_size=n))
    sell = draw(st.lists(prices, min_size=n, max_size=n))
    return problem(
        solar=solar,
        load=load,
        buy=buy,
        sell=sell,
        soc=draw(st.floats(0, 100)),
        reserve=draw(st.integers(0, 100)),
        grid_charging=draw(st.booleans()),
        export_rule=draw(st.sampled_from(["battery_ok", "pv_only", "never"])),
        rte=draw(st.floats(0.7, 1.0)),
        wear=draw(st.floats(0, 0.1)),
        step_s=900,
        inverter_max_w=draw(st.one_of(st.none(), st.floats(3000, 10000))),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_plan_keeps_reserve_export_rule_and_grid_charging(p: Problem) -> None:
    plan = solve(p)
    assert plan.kind == "optimal", plan.reason
    floor = min(p.rules.reserve_pct, p.soc_pct)
    tol = 1e-4
    for step in plan.steps:
        surplus = max(step.solar_w - step.load_w, 0.0)
        assert floor - tol <= step.soc_pct <= 100 + tol
        assert step.charge_w <= p.battery.max_charge_w + tol
        assert step.discharge_w <= p.battery.max_discharge_w + tol
        if not p.rules.grid_charging:
            assert step.charge_w <= surplus + tol
        if p.rules.export_rule == "never":
            assert step.grid_w >= -tol
        if p.rules.export_rule == "pv_only":
            assert -step.grid_w <= surplus + tol
    baseline = self_consumption_plan(p, reason="")
    assert plan.cost + wear(p, plan) <= baseline.cost + wear(p, baseline) + tail_slack(p, plan)


def wear(p: Problem, plan: Plan) -> float:
    dt_h = p.horizon.step_s / 3600
    return sum(p.rules.wear_cost_per_kwh / 2 * (s.charge_w + s.discharge_w) * dt_h / 1000 for s in plan.steps)


def tail_slack(p: Problem, plan: Plan) -> float:
    # The LP also values what is left stored at the end: it may pay a little money to keep it.
    stored = max(s.soc_pct for s in plan.steps) / 100 * p.battery.capacity_wh
    # And the tie-breaks (pull towards self-consumption, no flapping) may cost a hair of money.
    dt_h = p.horizon.step_s / 3600
    energy_kwh = sum(s.charge_w + s.discharge_w + s.solar_w + s.load_w for s in plan.steps) * dt_h / 1000
    tie_breaks = (p.rules.self_consumption_pull_per_kwh + p.rules.flap_cost_per_kw + p.rules.early_per_kwh)
    tie_breaks *= 2 * energy_kwh
    return terminal_value_per_wh(p) * stored + tie_breaks + 1e-4  # + the solver's tolerances


steps = st.builds(
    PlanStep,
    start=st.just(T0),
    buy=prices,
    sell=prices,
    solar_w=st.floats(0, 8000),
    load_w=st.floats(0, 8000),
    charge_w=st.floats(0, 5000),
    discharge_w=st.floats(0, 5000),
    grid_w=st.floats(-8000, 8000),
    curtail_w=st.floats(0, 8000),
    soc_pct=st.floats(0, 100),
    cost=st.just(0.0),
)


@settings(max_examples=150, deadline=None)
@given(
    step=steps,
    later=steps,
    soc=st.floats(0, 100),
    reserve=st.integers(0, 100),
    grid_charging=st.booleans(),
    rule=st.sampled_from(["battery_ok", "pv_only", "never"]),
)
def test_every_command_keeps_the_users_limits(
    step: PlanStep, later: PlanStep, soc: float, reserve: int, grid_charging: bool, rule: ExportRule
) -> None:
    battery = Battery(capacity_wh=13500, max_charge_w=5000, max_discharge_w=5000)
    rules = Rules(reserve_pct=reserve, grid_charging=grid_charging, export_rule=rule)
    action = action_for(step, soc, battery, rules, [later])
    settings_ = SiteSettings(
        backup_reserve_pct=reserve,
        operation_mode="autonomous",
        export_rule=rule,
        grid_charging_allowed=grid_charging,
    )
    telemetry = SitePolicyInput(
        soc_pct=soc,
        solar_w=step.solar_w,
        load_w=step.load_w,
        grid_up=True,
        max_charge_w=5000,
        max_discharge_w=5000,
    )
    sp = compute_setpoints(settings_, telemetry, None, T0, NO_ALERTS, plan=action)
    assert sp.reserve_pct >= reserve
    assert not sp.grid_charging or grid_charging
    if rule == "never":
        assert sp.export_limit_w == 0
    if rule != "battery_ok" or soc <= reserve:
        assert sp.battery_w is None or sp.battery_w <= 0
    if not grid_charging and sp.battery_w is not None and sp.battery_w < 0:
        assert not sp.grid_charging  # a charge command then only takes solar surplus
    if sp.battery_w is not None:
        assert -5000 <= sp.battery_w <= 5000
        assert sp.revert_s > 0


def test_outage_or_unknown_soc_leaves_the_device_to_itself() -> None:
    settings_ = SiteSettings(operation_mode="autonomous")
    action = Action(kind="charge", battery_w=-3000, grid_charging=True)
    for telemetry in (
        SitePolicyInput(
            soc_pct=None, solar_w=0, load_w=0, grid_up=True, max_charge_w=5000, max_discharge_w=5000
        ),
        SitePolicyInput(
            soc_pct=50, solar_w=0, load_w=0, grid_up=False, max_charge_w=5000, max_discharge_w=5000
        ),
    ):
        sp = compute_setpoints(settings_, telemetry, None, T0, NO_ALERTS, plan=action)
        assert sp == Setpoints(reserve_pct=20, grid_charging=True, export_limit_w=None)


def test_hold_raises_the_reserve_to_the_soc_and_stops_grid_top_up() -> None:
    battery = Battery(capacity_wh=13500, max_charge_w=5000, max_discharge_w=5000)
    rules = Rules(reserve_pct=20, grid_charging=True, export_rule="pv_only")
    step = PlanStep(
        start=T0,
        buy=0.2,
        sell=0.05,
        solar_w=0,
        load_w=800,
        charge_w=0,
        discharge_w=0,
        grid_w=800,
        curtail_w=0,
        soc_pct=63.4,
        cost=0.0,
    )
    # No later step is dearer: holding has no reason, self-consumption's timing is kept.
    assert action_for(step, 63.4, battery, rules).kind == "self_consumption"
    peak = dataclasses.replace(step, buy=0.5, discharge_w=800, grid_w=0)
    action = action_for(step, 63.4, battery, rules, [peak])
    assert action.kind == "hold"
    sp = compute_setpoints(
        SiteSettings(operation_mode="autonomous"),
        SitePolicyInput(
            soc_pct=63.4, solar_w=0, load_w=800, grid_up=True, max_charge_w=5000, max_discharge_w=5000
        ),
        None,
        T0,
        NO_ALERTS,
        plan=action,
    )
    assert (sp.reserve_pct, sp.grid_charging, sp.battery_w) == (63, False, None)


def test_storm_still_wins_over_a_plan() -> None:
    from gateway.core.policy import Alerts

    sp = compute_setpoints(
        SiteSettings(operation_mode="autonomous"),
        SitePolicyInput(
            soc_pct=50, solar_w=0, load_w=0, grid_up=True, max_charge_w=5000, max_discharge_w=5000
        ),
        None,
        T0,
        Alerts(storm=True),
        plan=Action(kind="discharge", battery_w=5000),
    )
    assert sp.reserve_pct == 100
    assert sp.battery_w is None


def test_dp_helper_agrees_with_itself_on_a_trivial_case() -> None:
    # Guard the oracle: one step, no battery use possible, the cost is the import.
    p = problem(solar=[0], load=[1000], buy=[0.3], soc=0, grid_charging=False)
    assert dp_optimum(p, 100.0) == pytest.approx(0.3)
    assert list(itertools.islice(iter(CASES), 1))


def test_a_solve_prints_nothing_on_stdout() -> None:
    """stdout carries the gateway's JSON log lines: HiGHS' banner must not land there."""
    import subprocess
    import sys

    script = (
        "from tests.unit.test_planner import problem\n"
        "from gateway.core.planner import solve\n"
        "plan = solve(problem(solar=[0, 0], load=[500, 500], buy=[0.1, 0.4], soc=50, rte=0.9))\n"
        "assert plan.kind == 'optimal', plan\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, timeout=60)
    assert done.stdout == b""
