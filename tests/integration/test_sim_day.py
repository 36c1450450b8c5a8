"""Two simulated hours of the demo home through gateway and simulator (``python -m bench.sim_day``
runs the whole day): the gateway's calendar_history agrees with the simulator's energy meters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.sim_day import FIELDS, run_sim_day

BERLIN = ZoneInfo("Europe/Berlin")


async def test_two_simulated_hours_agree_with_the_simulator_meters(tmp_path: Path) -> None:
    # late morning in June: solar covers the home, charges the battery and exports the rest
    start = datetime(2026, 6, 21, 10, 0, tzinfo=BERLIN)
    result = await run_sim_day(tmp_path / "data", start=start, hours=2, speed=1440.0)
    print("\n".join(str(row) for row in result.rows()))
    truth, gateway = result.truth_wh, result.gateway_wh
    assert truth["total_solar_generation"] > 5000
    assert truth["total_battery_charge"] > 500
    for name, _ in FIELDS:
        # A reading every ~72 simulated seconds holds its power until the next (zero-order
        # hold): where the flows step (the battery full, say) that costs up to a reading's worth
        # of energy, ~2 % of two hours' export at this speed. The full day: docs/benchmarks.md.
        assert abs(gateway[name] - truth[name]) <= max(50.0, 0.05 * truth[name]), (name, result)
