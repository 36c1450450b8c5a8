"""The planner driving the simulated home: the user's rules hold in every simulated minute."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench._energy_home import SLOTS_PER_DAY, PlannerAgent, World, run_home
from gateway.core.settings import ExportRule, SiteSettings
from simulator.config import HomeConfig

TZ = ZoneInfo("Europe/Berlin")
SLOTS = SLOTS_PER_DAY // 3  # 8 hours: from a sunny midday into the evening peak


@st.composite
def worlds(draw: st.DrawFn) -> World:
    prices = st.floats(-0.2, 0.6, allow_nan=False)
    buy = draw(st.lists(prices, min_size=SLOTS + 1, max_size=SLOTS + 1))
    sell = [min(b, draw(prices)) if draw(st.booleans()) else draw(prices) for b in buy]
    return World(
        start=datetime(2026, draw(st.sampled_from([4, 6, 12])), 8, 12, tzinfo=TZ),
        tz=TZ,
        cloud=draw(st.lists(st.floats(0, 1), min_size=SLOTS + 1, max_size=SLOTS + 1)),
        load_scale=[draw(st.floats(0.5, 2.0))] * 2,
        buy=buy,
        sell=sell,
        known_until=[SLOTS + 1] * (SLOTS + 1),
    )


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    world=worlds(),
    reserve=st.integers(0, 90),
    grid_charging=st.booleans(),
    rule=st.sampled_from(["battery_ok", "pv_only", "never"]),
    soc=st.floats(0, 100),
)
def test_reserve_export_rule_and_grid_charging_hold_in_every_simulated_minute(
    world: World, reserve: int, grid_charging: bool, rule: ExportRule, soc: float
) -> None:
    config = HomeConfig(id="prop", initial_soc_pct=soc, devices=[])
    user = SiteSettings(
        backup_reserve_pct=reserve,
        operation_mode="autonomous",
        export_rule=rule,
        grid_charging_allowed=grid_charging,
    )
    planner = PlannerAgent(config, world, user, tariff=None, horizon_steps=12)
    out = run_home(config, world, user, rule_tariff=lambda _d: None, planner=planner, check=True, days=None)
    assert out.violations == []
    # Only the last steps, where fewer than 4 steps of prices are left, fall back.
    assert planner.fallbacks <= 3
