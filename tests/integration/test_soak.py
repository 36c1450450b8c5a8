"""Soak (short form; ``python -m bench.soak`` runs the long one): concurrent clients, random
valid and invalid commands, random faults; nothing acknowledged is lost, no 500s, no leaked
tasks (the autouse guard), memory flat."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import run_soak
from gateway.core.config import Plan
from simulator import Simulator
from tests.helpers import gateway_config, token
from tests.integration.conftest import GatewayFactory


@pytest.mark.soak
@pytest.mark.timeout(180)
async def test_soak_loses_nothing_under_random_faults(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = gateway_config(sim, tmp_path / "data", stale_after_s=2.0, command_timeout_s=2.0,
                            plans={"standard": Plan(per_minute=10_000_000, per_day=100_000_000)})
    async with start_gateway(config) as gateway:
        report = await run_soak(sim, gateway.site, gateway.url, token=token(ttl_s=3600),
                                duration_s=20, clients=6, seed=7)
    print("\n".join(report.lines()))
    assert report.acknowledged > 50
    assert sum(report.faults.values()) >= 10
    assert report.lost == []
    assert report.server_errors == 0
    assert report.statuses[500] == 0
    assert report.rss_growth_mb < 64
