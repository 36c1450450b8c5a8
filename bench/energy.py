"""Energy: what ``autonomous`` saves, simulated days against self-consumption, the old rule and the limit.

Run: ``.venv/bin/python -m bench.energy [--days 14] [--warmup 2] [--jobs 2] [--dev]``

The pure evaluation: the simulator's physics (``simulator/physics.py``) and the gateway's policy
(``gateway/core/policy.py``) with its planner, minute by minute, no sockets. Every scenario is a
tariff x a weather pattern x ``--days`` days with seeded clouds (a daily level plus noise per
30-minute step), a seeded daily load scale and the physics' own load noise. Each scenario runs four
times from the same start:

- ``self``: self-consumption;
- ``rule``: ``autonomous`` with today's two-level rule (charge when cheap, cover when dear);
- ``planner``: ``autonomous`` with the planner and its own forecasts (clear-sky PV x learned
  correction, learned load profile), learning from ``--warmup`` days before the counted ones;
- ``optimum``: the same planner handed the true PV and load of every step (perfect foresight:
  the limit of what forecasting can give), re-planned each step like the planner.

Prices are known as a real site knows them: the flat and TOU tariffs always, the dynamic day-ahead
prices for the next day from 13:00. Scenario seeds are fixed; ``--dev`` swaps in the separate
development set (other seeds, dates and place) that the planner's constants were chosen on.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench._energy_home import SLOTS_PER_DAY, STEP_S, Outcome, PlannerAgent, World, run_home, true_means
from gateway.core.settings import SiteSettings
from gateway.core.tariff import Tariff, parse_tariff
from simulator.config import HomeConfig

TZ_NAME = "Europe/Berlin"
PUBLISH_HOUR = 13  # day-ahead prices for tomorrow appear at 13:00 local

# name -> (start date, cloud level range per day, share of days with a heavy-cloud level)
WEATHER: dict[str, tuple[str, tuple[float, float], float]] = {
    "sunny summer": ("2026-06-08", (0.0, 0.25), 0.15),
    "mixed spring": ("2026-04-06", (0.1, 0.9), 0.0),
    "grey winter": ("2026-12-07", (0.55, 0.95), 0.0),
}
DEV_WEATHER: dict[str, tuple[str, tuple[float, float], float]] = {
    "sunny summer": ("2025-07-14", (0.0, 0.3), 0.1),
    "mixed spring": ("2025-10-06", (0.1, 0.9), 0.0),
    "grey winter": ("2025-01-13", (0.5, 0.95), 0.0),
}
TARIFFS = ("flat", "tou3", "dynamic")
GOAL_EVERY = 0.85
GOAL_MEAN = 0.90
GOAL_WORST_DAY = 0.02
GOAL_CPU = 0.05
NOTHING_TO_GAIN = 0.01


def _seasons(periods: dict[str, Any]) -> dict[str, Any]:
    return {"Year": {"fromMonth": 1, "fromDay": 1, "toMonth": 12, "toDay": 31, "tou_periods": periods}}


def hourly_tariff(buy: list[float], sell: list[float], code: str) -> dict[str, Any]:
    """A ``tariff_content_v2`` with one period per hour of the day (every day the same)."""
    periods = {
        f"H{h:02d}": {
            "periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": h, "toHour": (h + 1) % 24}]
        }
        for h in range(24)
    }
    return {
        "version": 1,
        "code": code,
        "name": code,
        "utility": "bench",
        "currency": "EUR",
        "energy_charges": {
            "ALL": {"rates": {"ALL": 0}},
            "Year": {"rates": {f"H{h:02d}": buy[h] for h in range(24)}},
        },
        "seasons": _seasons(periods),
        "sell_tariff": {
            "name": f"{code} export",
            "energy_charges": {
                "ALL": {"rates": {"ALL": 0}},
                "Year": {"rates": {f"H{h:02d}": sell[h] for h in range(24)}},
            },
            "seasons": _seasons(periods),
        },
    }


def tou3_content() -> dict[str, Any]:
    """Three levels like the Fleet docs' example: off-peak, partial peak 15-16 and 21-24, peak 16-21."""
    buy = [0.2451] * 24
    sell = [0.05] * 24
    for h in (15, 21, 22, 23):
        buy[h], sell[h] = 0.4471, 0.12
    for h in range(16, 21):
        buy[h], sell[h] = 0.5576, 0.30
    return hourly_tariff(buy, sell, "TOU3")


def tou3_tariff() -> Tariff:
    """``tou3_content`` parsed."""
    return parse_tariff(tou3_content())


def flat_tariff() -> Tariff:
    """One price all day: 0.30 buy, 0.08 sell."""
    return parse_tariff(hourly_tariff([0.30] * 24, [0.08] * 24, "FLAT"))


def dynamic_prices(rng: random.Random, days: int, sunniness: list[float]) -> list[list[float]]:
    """Hourly day-ahead spot prices per day (per kWh): night and evening peaks, a solar dip that
    goes negative on sunny days, and noise."""
    out = []
    for day in range(days):
        level = rng.uniform(0.06, 0.14)
        dip = 0.22 * sunniness[day] + rng.uniform(0.0, 0.05)
        hours = []
        for h in range(24):
            morning = 0.05 * math.exp(-0.5 * ((h - 8) / 1.5) ** 2)
            evening = 0.10 * math.exp(-0.5 * ((h - 19) / 2.0) ** 2)
            solar = dip * math.exp(-0.5 * ((h - 13) / 2.2) ** 2)
            hours.append(round(level + morning + evening - solar + rng.gauss(0, 0.012), 4))
        out.append(hours)
    return out


@dataclass(frozen=True, slots=True)
class Scenario:
    """One tariff x weather pattern, seeded."""

    tariff: str
    weather: str
    seed: int
    dev: bool


def build(
    scenario: Scenario, days: int
) -> tuple[HomeConfig, World, Callable[[int], Tariff | None], Tariff | None]:
    """The home, the world and the tariffs of a scenario (``days`` counted + one for the horizon)."""
    rng = random.Random(scenario.seed)
    table = DEV_WEATHER if scenario.dev else WEATHER
    start_date, (low, high), heavy = table[scenario.weather]
    tz = ZoneInfo(TZ_NAME)
    start = datetime.fromisoformat(start_date).replace(tzinfo=tz)
    lat, lon = (48.14, 11.58) if scenario.dev else (52.52, 13.40)
    config = HomeConfig(
        id="bench", latitude=lat, longitude=lon, time_zone=TZ_NAME, seed=scenario.seed, devices=[]
    )
    levels = [rng.uniform(0.7, 1.0) if rng.random() < heavy else rng.uniform(low, high) for _ in range(days)]
    cloud: list[float] = []
    noise = 0.0
    for day in range(days):
        for _ in range(SLOTS_PER_DAY):
            noise = 0.8 * noise + rng.gauss(0, 0.08)
            cloud.append(min(1.0, max(0.0, levels[day] + noise)))
    load_scale = [rng.uniform(0.85, 1.15) for _ in range(days)]
    slots = days * SLOTS_PER_DAY
    starts = [start + timedelta(seconds=i * STEP_S) for i in range(slots)]
    if scenario.tariff == "dynamic":
        spot = dynamic_prices(rng, days, [1 - c for c in levels])
        fees = 0.15
        per_hour = SLOTS_PER_DAY // 24
        sell = [spot[i // SLOTS_PER_DAY][(i % SLOTS_PER_DAY) // per_hour] for i in range(slots)]
        buy = [round(p + fees, 4) for p in sell]
        # A Fleet tariff holds no negative price: the rule gets the day's prices floored at 0
        # (it only reads their levels); costs are counted at the true prices.
        daily = [
            parse_tariff(
                hourly_tariff(
                    [max(0.0, p + fees) for p in spot[d]], [max(0.0, p) for p in spot[d]], f"DYN{d}"
                )
            )
            for d in range(days)
        ]
        known = []
        for i in range(slots):
            day, slot_of_day = divmod(i, SLOTS_PER_DAY)
            through = day + 2 if slot_of_day // per_hour >= PUBLISH_HOUR else day + 1
            known.append(through * SLOTS_PER_DAY)
        world = World(
            start=start, tz=tz, cloud=cloud, load_scale=load_scale, buy=buy, sell=sell, known_until=known
        )
        return config, world, lambda d: daily[d], None
    tariff = flat_tariff() if scenario.tariff == "flat" else tou3_tariff()
    prices = [tariff.price_at(s.astimezone(tz)) for s in starts]
    world = World(
        start=start,
        tz=tz,
        cloud=cloud,
        load_scale=load_scale,
        buy=[p.buy for p in prices],
        sell=[p.sell for p in prices],
        known_until=[slots] * slots,
    )
    return config, world, lambda _d: tariff, tariff


def run_scenario(args: tuple[Scenario, int, int]) -> dict[str, Any]:
    """All four policies through one scenario; per-day outcomes of the counted days."""
    scenario, days, warmup = args
    total = warmup + days
    config, world, rule_tariff, tariff = build(scenario, total + 1)
    base = SiteSettings(backup_reserve_pct=20, export_rule="battery_ok", grid_charging_allowed=True)
    auto = SiteSettings(
        backup_reserve_pct=20,
        export_rule="battery_ok",
        grid_charging_allowed=True,
        operation_mode="autonomous",
    )
    truth = true_means(config, world)
    started = time.perf_counter()
    outcomes: dict[str, Outcome] = {
        "self": run_home(config, world, base, rule_tariff=rule_tariff, planner=None, days=total),
        "rule": run_home(config, world, auto, rule_tariff=rule_tariff, planner=None, days=total),
        "planner": run_home(
            config,
            world,
            auto,
            rule_tariff=rule_tariff,
            days=total,
            planner=PlannerAgent(config, world, auto, tariff=tariff),
        ),
        "optimum": run_home(
            config,
            world,
            auto,
            rule_tariff=rule_tariff,
            days=total,
            planner=PlannerAgent(config, world, auto, tariff=tariff, truth=truth),
        ),
    }
    result: dict[str, Any] = {"scenario": scenario, "wall_s": time.perf_counter() - started}
    for name, out in outcomes.items():
        result[name] = {
            "cost": out.cost[warmup:],
            "import_cost": out.import_cost[warmup:],
            "export_revenue": out.export_revenue[warmup:],
            "stored_delta_wh": out.stored_delta_wh[warmup:],
            "mean_buy": [
                statistics.fmean(world.buy[d * SLOTS_PER_DAY : (d + 1) * SLOTS_PER_DAY])
                for d in range(warmup, total)
            ],
            "cycles": [wh / config.battery_capacity_wh for wh in out.discharge_wh[warmup:]],
            "changes": out.mode_changes[warmup:],
            "cpu_ms": out.step_cpu_ms,
            "fallbacks": out.fallbacks,
        }
    return result


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Totals, captured share, worst day against self-consumption."""
    self_cost = sum(result["self"]["cost"])
    opt_cost = sum(result["optimum"]["cost"])
    achievable = self_cost - opt_cost
    bill = sum(result["self"]["import_cost"]) + sum(abs(x) for x in result["self"]["export_revenue"])
    row: dict[str, Any] = {"self": self_cost, "achievable": achievable, "bill": bill}
    for name in ("rule", "planner", "optimum"):
        cost = sum(result[name]["cost"])
        row[name] = cost
        # A share of (almost) nothing is noise: below 1 % of the money that changed hands the
        # scenario has nothing to capture (a flat tariff: self-consumption is the optimum).
        meaningful = achievable > NOTHING_TO_GAIN * bill
        row[f"{name}_captured"] = (self_cost - cost) / achievable if meaningful else math.nan
        worst, worst_abs, worst_bill = 0.0, 0.0, 0.0
        for day in range(len(result[name]["cost"])):
            # A day is charged for the energy it leaves in the battery beyond what
            # self-consumption left (valued at the day's mean buy price, after losses), so
            # energy moved across midnight does not make one day look bad and the next good.
            value = max(result[name]["mean_buy"][day], 0.0) * 0.9 / 1000
            own = result[name]["cost"][day] - result[name]["stored_delta_wh"][day] * value
            ref = result["self"]["cost"][day] - result["self"]["stored_delta_wh"][day] * value
            # "That day's bill": the money that changed hands under self-consumption, imports
            # plus export credit (a net bill can be 0 or negative in summer).
            bill = result["self"]["import_cost"][day] + abs(result["self"]["export_revenue"][day])
            share = (own - ref) / max(bill, 0.5)
            if share > worst:
                worst, worst_abs, worst_bill = share, own - ref, bill
        row[f"{name}_worst"] = worst
        row[f"{name}_worst_abs"] = (worst_abs, worst_bill)
        row[f"{name}_cycles"] = statistics.fmean(result[name]["cycles"])
        row[f"{name}_changes"] = statistics.fmean(result[name]["changes"])
    row["self_cycles"] = statistics.fmean(result["self"]["cycles"])
    cpu = result["planner"]["cpu_ms"]
    row["cpu_mean_ms"] = statistics.fmean(cpu) if cpu else math.nan
    row["cpu_max_ms"] = max(cpu) if cpu else math.nan
    row["fallbacks"] = result["planner"]["fallbacks"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=14, help="counted days per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="days the planner learns before counting")
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run in parallel processes")
    parser.add_argument("--dev", action="store_true", help="the development set (not the reported one)")
    parser.add_argument("--tariffs", default=",".join(TARIFFS))
    parser.add_argument("--weather", default=",".join(WEATHER))
    opts = parser.parse_args()
    scenarios = [
        Scenario(tariff=t, weather=w, seed=(1000 if opts.dev else 0) + 17 * i + 3 * j + 1, dev=opts.dev)
        for i, t in enumerate(opts.tariffs.split(","))
        for j, w in enumerate(opts.weather.split(","))
    ]
    started = time.perf_counter()
    jobs = [(s, opts.days, opts.warmup) for s in scenarios]
    if opts.jobs > 1:
        with ProcessPoolExecutor(opts.jobs) as pool:
            results = list(pool.map(run_scenario, jobs))
    else:
        results = [run_scenario(job) for job in jobs]
    rows = [(r["scenario"], summarise(r)) for r in results]
    print(
        f"# energy bench: {len(rows)} scenarios x {opts.days} days (+{opts.warmup} warm-up), "
        f"{'dev' if opts.dev else 'reported'} set, {time.perf_counter() - started:.0f} s"
    )
    print()
    print(
        "| tariff | weather | self-cons. | rule | planner | optimum (limit) | achievable | rule captured "
        "| planner captured | planner worst day | cycles/day self / planner / opt "
        "| mode changes/day rule / planner |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    captured = []
    for scenario, row in rows:
        captured.append(row["planner_captured"])
        print(
            f"| {scenario.tariff} | {scenario.weather} | {row['self']:.2f} | {row['rule']:.2f} "
            f"| {row['planner']:.2f} | {row['optimum']:.2f} | {row['achievable']:.2f} "
            f"| {_pct(row['rule_captured'])} "
            f"| {_pct(row['planner_captured'])} | {100 * row['planner_worst']:+.1f} % "
            f"| {row['self_cycles']:.2f} / {row['planner_cycles']:.2f} / {row['optimum_cycles']:.2f} "
            f"| {row['rule_changes']:.1f} / {row['planner_changes']:.1f} |"
        )
    finite = [c for c in captured if math.isfinite(c)]
    cpu_mean = statistics.fmean(r["cpu_mean_ms"] for _, r in rows)
    cpu_max = max(r["cpu_max_ms"] for _, r in rows)
    worst = max(r["planner_worst"] for _, r in rows)
    print()
    print(
        f"planner captured: min {_pct(min(finite))}, mean {_pct(statistics.fmean(finite))} "
        f"(goals >= {GOAL_EVERY:.0%} each, >= {GOAL_MEAN:.0%} mean)"
    )
    print(
        f"planner worst day vs self-consumption: {100 * worst:+.1f} % of that day's bill "
        f"(goal <= {GOAL_WORST_DAY:.0%})"
    )
    share = cpu_mean / (STEP_S * 1000)
    print(
        f"planner step CPU: mean {cpu_mean:.1f} ms, max {cpu_max:.1f} ms per {STEP_S // 60}-min step "
        f"= {100 * share:.4f} % of one core (goal < {GOAL_CPU:.0%})"
    )
    print(f"planner fallbacks to self-consumption: {sum(r['fallbacks'] for _, r in rows)}")
    print()
    print("worst day vs self-consumption (share of that day's bill; excess / bill in currency):")
    for scenario, row in rows:
        cells = []
        for name in ("rule", "planner", "optimum"):
            excess, day_bill = row[f"{name}_worst_abs"]
            cells.append(f"{name} {100 * row[f'{name}_worst']:+.1f} % ({excess:+.2f} / {day_bill:.2f})")
        print(f"  {scenario.tariff} / {scenario.weather}: " + ", ".join(cells))


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.1f} %"


if __name__ == "__main__":
    main()
