"""A simulated day end to end: the demo home through gateway and simulator, history against the truth.

The demo's home 1001 (config.example.yaml: 8 kWp, 13.5 kWh battery, Berlin) runs one simulated
day in ``self_consumption`` at high clock speed, the gateway following the simulator's clock;
then the gateway's ``calendar_history`` energy for that day is set against the simulator's own
energy meters (its truth) for the same interval. The truth is the baseline: the figures are the
gateway's totals and their difference from it.

Run: ``.venv/bin/python -m bench.sim_day [--speed 2400] [--date 2026-06-21] [--clock in_process]``.
``--clock simulator`` follows the clock over HTTP (``gateway.clock``, as ``serve`` does) instead
of in process (as ``demo`` does). The engine (``run_sim_day``) is shared with a 2-hour test.

``--mode autonomous --tariff tou3`` runs the day under the planner with ``bench/energy.py``'s
3-level TOU tariff and its settings (set through the Fleet API), and sets the day's bill from the
simulator's meters per 30-minute step against ``bench/energy.py``'s pure evaluation of the same
day (same home, clear sky, same seeded load): the pure bill is the baseline.
``--tariff dynamic --weather "mixed spring"`` runs the first day of that reported scenario
instead: its day-ahead prices served as the planner's price feed (published at 13:00 for the
next day, as in the pure run), its clouds set on the simulated home step by step.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from bench._common import ROOT, SECRET, bench_token, machine, print_table
from bench._energy_home import SLOTS_PER_DAY, STEP_S, PlannerAgent, World, run_home
from bench.energy import TARIFFS, WEATHER, Scenario, build, tou3_content
from gateway.core.config import ClockSection, Config, DeviceConfig, Plan, RateLimits, read_config
from gateway.core.config.planner import FeedConfig
from gateway.core.settings import SiteSettings
from gateway.core.tariff import Tariff, parse_tariff
from gateway.runtime.clock import InProcessClock, Timebase
from gateway.web.app import create_app
from gateway.web.keys import SITES
from gateway.web.server import GatewayRunner
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimulatorConfig
from simulator.home import SimHome
from simulator.physics import HomeTruth

SITE_ID = 1001
HOME = "home-1001"
ClockKind = Literal["in_process", "simulator"]

# (Fleet calendar_history field, how the truth's meters give it)
FIELDS: tuple[tuple[str, str], ...] = (
    ("total_solar_generation", "solar"),
    ("total_home_usage", "home"),
    ("grid_energy_imported", "import"),
    ("total_grid_energy_exported", "export"),
    ("total_battery_charge", "charge"),
    ("total_battery_discharge", "discharge"),
)


@dataclass(frozen=True)
class SimDayResult:
    """What one run measured: per field, the truth's and the gateway's Wh over the same interval."""

    start: datetime
    end: datetime  # the end of the window the gateway's entries cover
    truth_end: datetime  # the physics step after ``end`` (the meters are interpolated to ``end``)
    speed: float
    clock: ClockKind
    real_s: float
    polls: int
    truth_wh: dict[str, float]
    gateway_wh: dict[str, float]
    step_truth: tuple[dict[str, float], ...] = ()  # the meters' energy per ``step_s`` interval
    stored_delta_wh: float = 0.0  # energy in the battery at the end minus at the start

    def error_pct(self, field: str) -> float:
        """The gateway's figure against the truth, in % of the truth."""
        truth = self.truth_wh[field]
        return 100.0 * (self.gateway_wh[field] - truth) / truth if truth else float("nan")

    def rows(self) -> list[list[Any]]:
        """One row per field: truth, gateway, difference (Wh and %)."""
        return [[name, round(self.truth_wh[name]), round(self.gateway_wh[name]),
                 round(self.gateway_wh[name] - self.truth_wh[name]),
                 "-" if not self.truth_wh[name] else f"{self.error_pct(name):+.2f} %"]
                for name, _ in FIELDS]


def demo_configs(data_dir: Path, start: datetime, *, poll_interval_s: float,
                 clock: ClockKind, tick_s: float = 0.05,
                 price_feed: bool = True) -> tuple[SimulatorConfig, Any]:
    """The simulator and gateway sections of config.example.yaml, reduced to home 1001."""
    loaded = read_config(ROOT / "config.example.yaml")
    sim = loaded.section("simulator", SimulatorConfig)
    assert sim is not None  # noqa: S101 - the example has one
    home = next(h for h in sim.homes if h.id == HOME)
    # no EV charger: its OCPP listener has a fixed port in the example, and the day is the home's
    home = home.model_copy(update={"devices": [d.model_copy(update={"port": 0})
                                               for d in home.devices
                                               if d.kind != "ocpp_charger"]})
    sim_config = sim.model_copy(update={
        "control": ControlConfig(port=0), "homes": [home], "start": start,
        "clock_speed": 0.0,  # frozen until the gateway is up: the day starts with its first reading
        "tick_s": tick_s})

    def gateway_config(simulator: Simulator) -> Config:
        site = loaded.config.site(SITE_ID)
        devices = []
        for dev in site.devices:
            endpoint = simulator.endpoint(dev.simulated or "")
            options = dev.options.model_copy(update={"host": endpoint.host, "port": endpoint.port})
            devices.append(DeviceConfig.model_validate({
                **dev.model_dump(exclude={"options"}), "poll_interval_s": poll_interval_s,
                "options": options}))
        gateway = loaded.config.gateway.model_copy(update={
            "port": 0, "data_dir": data_dir, "jwt_secret": SECRET, "ocpp": None,
            "rate_limits": RateLimits(default_plan="bench", plans={
                "bench": Plan(per_minute=10_000_000, per_day=100_000_000)}),
            "clock": ClockSection(source="simulator", url=simulator.control_url,
                                  sync_interval_s=0.2, timeout_s=1.0)
            if clock == "simulator" else ClockSection()})
        update: dict[str, Any] = {"devices": devices, "chargers": []}
        if not price_feed:  # the planner then prices steps with the site's tariff
            update["planner"] = site.planner.model_copy(update={"price_feed": None})
        return Config(gateway=gateway, sites=[site.model_copy(update=update)])

    return sim_config, gateway_config


_METERS = ("solar_wh", "grid_import_wh", "grid_export_wh", "battery_charge_wh",
           "battery_discharge_wh")


def _truth_wh(first: HomeTruth, before: HomeTruth, after: HomeTruth,
              end: datetime) -> dict[str, float]:
    """The meters' energy from ``first`` to ``end``, interpolated between the two physics steps
    around ``end`` (the simulator steps its homes every tick, ``speed x tick_s`` apart)."""
    span = (after.at - before.at).total_seconds()
    share = 0.0 if span <= 0 else (end - before.at).total_seconds() / span
    wh = {m: getattr(before, m) + share * (getattr(after, m) - getattr(before, m))
          - getattr(first, m) for m in _METERS}
    solar, imported, exported = wh["solar_wh"], wh["grid_import_wh"], wh["grid_export_wh"]
    charge, discharge = wh["battery_charge_wh"], wh["battery_discharge_wh"]
    return {"solar": solar, "import": imported, "export": exported, "charge": charge,
            "discharge": discharge, "home": solar + discharge + imported - charge - exported}


async def _meters_around(home: SimHome, ends: list[datetime],
                         timeout_s: float) -> list[tuple[HomeTruth, HomeTruth]]:
    """Per time in ``ends`` (ascending), the home's truth at its last physics step before it
    and its first at or after it."""
    deadline = time.monotonic() + timeout_s
    before = home.truth()
    found: list[tuple[HomeTruth, HomeTruth]] = []
    while True:
        truth = home.truth()
        while len(found) < len(ends) and truth.at >= ends[len(found)]:
            found.append((before, truth))
        if len(found) == len(ends):
            return found
        before = truth
        if time.monotonic() > deadline:
            raise TimeoutError(f"the simulated interval did not end within {timeout_s:g} s")
        await asyncio.sleep(0.005)  # finer than a tick: no step is missed


async def _until(probe: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        await asyncio.sleep(0.02)


async def run_sim_day(data_dir: Path, *, start: datetime, hours: int = 24, speed: float = 2400.0,
                      poll_interval_s: float = 0.05, tick_s: float = 0.05,
                      clock: ClockKind = "in_process", mode: str = "self_consumption",
                      tariff: dict[str, Any] | None = None, step_s: int = 0,
                      world: World | None = None) -> SimDayResult:
    """Run the demo home from ``start`` (a whole local hour) for ``hours`` at ``speed``.

    ``mode`` and ``tariff`` (a ``tariff_content_v2``; given, the planner prices with it instead
    of the example's price feed) are set through the Fleet API before the clock runs, with the
    settings ``bench/energy.py`` uses (reserve 20 %, grid charging, export ``battery_ok``).
    ``step_s`` > 0 also records the simulator's meters every ``step_s`` (``step_truth``).
    ``world`` (from ``bench/energy.py``'s ``build``): its cloud factor is set on the simulated
    home at every 30-minute step, and its prices are served as a day-ahead price feed (each day's
    published at 13:00 the day before, as ``World.known_until`` says) that the planner polls.

    The simulator starts frozen; once the gateway has read the home, ``POST /clock`` sets the
    speed (as a user would), and when the simulated interval is over it freezes the clock again.
    The gateway's hourly ``calendar_history`` entries in the interval are summed.
    """
    sim_config, gateway_config = await asyncio.to_thread(  # reads a file: off the loop
        demo_configs, data_dir, start, poll_interval_s=poll_interval_s, clock=clock, tick_s=tick_s,
        price_feed=tariff is None and world is None)
    end = start + timedelta(hours=hours)
    async with Simulator(sim_config) as sim, aiohttp.ClientSession() as http, \
            _world_feed(world, sim) as feed_url:
        config = gateway_config(sim)
        if feed_url is not None:
            site_config = config.sites[0]
            config = config.model_copy(update={"sites": [site_config.model_copy(update={
                "planner": site_config.planner.model_copy(update={"price_feed": FeedConfig(
                    url=feed_url, refresh_s=1, timeout_s=2)})})]})
        sim_clock = sim.clock
        timebase: Timebase | None = None
        if clock == "in_process":
            timebase = InProcessClock(sim_clock.now, lambda: sim_clock.speed)
        app = create_app(config, timebase=timebase)
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            site = app[SITES][SITE_ID]
            await _until(lambda: not site.offline() and site.applied is not None, 20,
                         "gateway online")
            headers = {"Authorization": f"Bearer {bench_token()}"}
            await _set_up_site(http, f"http://{host}:{port}/api/1/energy_sites/{SITE_ID}",
                               headers, mode, tariff)
            home = sim.homes[HOME]
            first = home.truth()
            ends = [start + timedelta(seconds=s) for s in range(step_s, 3600 * hours, step_s)
                    ] if step_s > 0 else []
            ends.append(end)
            started = time.monotonic()
            weather = None if world is None else asyncio.create_task(_drive_clouds(world, sim, home))
            async with http.post(f"{sim.control_url}/clock", json={"speed": speed}) as resp:
                resp.raise_for_status()
            try:
                around = await _meters_around(home, ends, 3600 * hours / speed * 3 + 60)
            finally:
                if weather is not None:
                    weather.cancel()
            before, after = around[-1]
            async with http.post(f"{sim.control_url}/clock", json={"speed": 0}) as resp:
                resp.raise_for_status()
            real_s = time.monotonic() - started
            polls = site.devices[0].polls
            day_end = datetime.combine(start.date(), datetime.min.time(), site.tz) + timedelta(
                hours=23, minutes=59, seconds=59)
            query = f"kind=energy&period=day&end_date={day_end.isoformat()}"
            async with http.get(f"http://{host}:{port}/api/1/energy_sites/{SITE_ID}/"
                                f"calendar_history?{query}", headers=headers) as resp:
                resp.raise_for_status()
                series = (await resp.json())["response"]["time_series"]
        finally:
            await runner.cleanup()
    gateway_wh = {name: 0.0 for name, _ in FIELDS}
    for entry in series:
        at = datetime.fromisoformat(entry["timestamp"])
        if start <= at < end:
            for name, _ in FIELDS:
                gateway_wh[name] += entry[name]
    truth = _truth_wh(first, before, after, end)
    cumulative = [_truth_wh(first, b, a, at) for (b, a), at in zip(around, ends, strict=True)]
    steps = tuple({k: now[k] - (prev[k] if prev else 0.0) for k in now}
                  for prev, now in zip([None, *cumulative[:-1]], cumulative, strict=True))
    return SimDayResult(start=start, end=end, truth_end=after.at, speed=speed, clock=clock,
                        real_s=real_s, polls=polls,
                        truth_wh={name: truth[key] for name, key in FIELDS},
                        gateway_wh=gateway_wh, step_truth=steps if step_s > 0 else (),
                        stored_delta_wh=(after.soc_pct - first.soc_pct) / 100 * first.capacity_wh)


def _slot(world: World, now: datetime) -> int:
    return max(0, min(world.slots - 1, int((now - world.start).total_seconds() // STEP_S)))


async def _drive_clouds(world: World, sim: Simulator, home: SimHome) -> None:
    """The world's cloud factor on the simulated home, step by step in simulated time."""
    current = -1
    while True:
        slot = _slot(world, sim.clock.now())
        if slot != current:
            home.set_cloud_factor(world.cloud[slot])
            current = slot
        await asyncio.sleep(0.005)  # finer than a physics tick


@contextlib.asynccontextmanager
async def _world_feed(world: World | None, sim: Simulator) -> AsyncIterator[str | None]:
    """The world's prices as a price feed on a free loopback port (None without a world)."""
    if world is None:
        yield None
        return

    async def prices(_: web.Request) -> web.Response:
        known = world.known_until[_slot(world, sim.clock.now())]
        entries = [{"start": world.slot_start(i).isoformat(),
                    "end": world.slot_start(i + 1).isoformat(),
                    "buy": world.buy[i], "sell": world.sell[i]} for i in range(min(known, world.slots))]
        return web.json_response({"unit": "EUR/kWh", "prices": entries})

    app = web.Application()
    app.router.add_get("/prices", prices)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/prices"
    finally:
        await runner.cleanup()


async def _set_up_site(http: aiohttp.ClientSession, base: str, headers: dict[str, str],
                       mode: str, tariff: dict[str, Any] | None) -> None:
    """The site's settings through the Fleet API, as a user (or ``bench/energy.py``) sets them."""
    if mode == "self_consumption" and tariff is None:
        return  # the example's own settings, as the history comparison always ran
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("backup", {"backup_reserve_percent": 20}),
        ("grid_import_export", {"disallow_charge_from_grid_with_solar_installed": False,
                                "customer_preferred_export_rule": "battery_ok"}),
    ]
    if tariff is not None:
        bodies.append(("time_of_use_settings", {"tou_settings": {"tariff_content_v2": tariff}}))
    bodies.append(("operation", {"default_real_mode": mode}))
    for command, body in bodies:
        async with http.post(f"{base}/{command}", json=body, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{command}: HTTP {resp.status}: {await resp.text()}")


def _report(result: SimDayResult, poll_interval_s: float) -> None:
    print_table(f"{result.start:%Y-%m-%d %H:%M} + {(result.end - result.start) / timedelta(hours=1):g} h "
                f"simulated, speed {result.speed:g}, clock {result.clock}",
                ["field", "simulator truth (Wh)", "gateway (Wh)", "difference (Wh)", "difference"],
                result.rows())
    sim_s = (result.end - result.start).total_seconds()
    print(f"\nreal time {result.real_s:.1f} s for {sim_s / 3600:g} simulated hours; "
          f"{result.polls} polls ({poll_interval_s:g} s apart, ~{poll_interval_s * result.speed:.0f} "
          f"simulated s); meters interpolated to the end between physics steps (the later "
          f"{(result.truth_end - result.end).total_seconds():.0f} simulated s past it)")


@dataclass(frozen=True)
class DayCost:
    """One day's bill (import x buy - export x sell, per 30-minute step), end to end and pure."""

    e2e: float
    e2e_import: float
    e2e_export: float
    pure: float
    pure_import: float
    pure_export: float
    pure_stored_delta_wh: float

    @property
    def difference_pct(self) -> float:
        """The end-to-end bill against the pure one, in % of the pure day's bill."""
        return 100.0 * (self.e2e - self.pure) / abs(self.pure) if self.pure else float("nan")


def day_cost(result: SimDayResult, home: HomeConfig, tariff: Tariff | None,
             mode: Literal["self_consumption", "autonomous"], world: World | None = None) -> DayCost:
    """The run's bill from the simulator's meters per step, and ``bench/energy.py``'s pure
    evaluation of the same day: same home, same seeded load, same settings, the planner without
    warm-up days; clear sky (the simulator's default cloud factor 0) and ``tariff``'s prices, or
    ``world``'s clouds and day-ahead prices (the run's ``world``)."""
    tz = result.start.tzinfo
    assert tz is not None  # noqa: S101 - run_sim_day's start is aware
    slots = 2 * SLOTS_PER_DAY  # the counted day and the horizon's next one
    if world is None:
        assert tariff is not None  # noqa: S101 - one of the two
        prices = [tariff.price_at(result.start + timedelta(seconds=i * STEP_S)) for i in range(slots)]
        world = World(start=result.start, tz=tz, cloud=[0.0] * slots, load_scale=[1.0, 1.0],
                      buy=[p.buy for p in prices], sell=[p.sell for p in prices],
                      known_until=[slots] * slots)
    imp = exp = 0.0
    for i, step in enumerate(result.step_truth):
        imp += step["import"] * world.buy[i] / 1000
        exp += step["export"] * world.sell[i] / 1000
    settings = SiteSettings(backup_reserve_pct=20, export_rule="battery_ok",
                            grid_charging_allowed=True, operation_mode=mode)
    planner = PlannerAgent(home, world, settings, tariff=tariff) if mode == "autonomous" else None
    out = run_home(home, world, settings, rule_tariff=lambda _d: tariff, planner=planner, days=1)
    return DayCost(e2e=imp - exp, e2e_import=imp, e2e_export=exp, pure=out.cost[0],
                   pure_import=out.import_cost[0], pure_export=out.export_revenue[0],
                   pure_stored_delta_wh=out.stored_delta_wh[0])


def _report_cost(result: SimDayResult, cost: DayCost) -> None:
    print_table("the day's bill: end to end (simulator meters per 30-min step) against bench/energy.py",
                ["run", "bill", "import cost", "export revenue"],
                [["end to end", f"{cost.e2e:.3f}", f"{cost.e2e_import:.3f}", f"{cost.e2e_export:.3f}"],
                 ["pure (bench/energy.py)", f"{cost.pure:.3f}", f"{cost.pure_import:.3f}",
                  f"{cost.pure_export:.3f}"]])
    print(f"\ndifference: {cost.e2e - cost.pure:+.3f} = {cost.difference_pct:+.1f} % of the pure bill; "
          f"energy stored at the end minus at the start: end to end {result.stored_delta_wh:+.0f} Wh, "
          f"pure {cost.pure_stored_delta_wh:+.0f} Wh")


def main() -> None:
    """CLI entry."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", type=float, default=2400.0)
    parser.add_argument("--date", type=date.fromisoformat, default=date(2026, 6, 21))
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--poll-interval-s", type=float, default=0.05)
    parser.add_argument("--clock", choices=("in_process", "simulator"), default="in_process")
    parser.add_argument("--mode", choices=("self_consumption", "autonomous"),
                        default="self_consumption")
    parser.add_argument("--tariff", choices=("none", "tou3", "dynamic"), default="none",
                        help="tou3: bench/energy.py's 3-level TOU tariff; dynamic: its day-ahead "
                             "prices of a reported scenario (--weather), served as a price feed "
                             "with its clouds; either way the bill compared with its pure "
                             "evaluation of the same day")
    parser.add_argument("--weather", choices=tuple(WEATHER), default="mixed spring",
                        help="with --tariff dynamic: the reported scenario whose first day runs "
                             "(its date replaces --date)")
    args = parser.parse_args()
    world = None
    if args.tariff == "dynamic":
        index = (TARIFFS.index("dynamic"), tuple(WEATHER).index(args.weather))
        scenario = Scenario(tariff="dynamic", weather=args.weather,
                            seed=17 * index[0] + 3 * index[1] + 1, dev=False)  # as bench/energy.py
        _, scenario_world, _, _ = build(scenario, 2)
        # the demo home's load as the simulator draws it (scale 1), the scenario's clouds and prices
        world = replace(scenario_world, load_scale=[1.0] * 2)
        args.date = scenario_world.start.date()
    start = datetime.combine(args.date, datetime.min.time(), ZoneInfo("Europe/Berlin"))
    content = tou3_content() if args.tariff == "tou3" else None
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run_sim_day(Path(tmp), start=start, hours=args.hours,
                                         speed=args.speed, poll_interval_s=args.poll_interval_s,
                                         clock=args.clock, mode=args.mode, tariff=content,
                                         step_s=STEP_S if args.tariff != "none" else 0,
                                         world=world))
        sim_config, _ = demo_configs(Path(tmp), start, poll_interval_s=args.poll_interval_s,
                                     clock=args.clock)
    _report(result, args.poll_interval_s)
    if args.tariff != "none":
        _report_cost(result, day_cost(result, sim_config.homes[0],
                                      parse_tariff(content) if content is not None else None,
                                      args.mode, world))


if __name__ == "__main__":
    main()
