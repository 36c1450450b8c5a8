"""GET /metrics over real HTTP against the simulator, parsed with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.core.config import Plan
from simulator import Simulator
from tests.helpers import SECRET, SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory, RunningGateway

SITE = str(SITE_ID)


async def scrape(http: aiohttp.ClientSession, gw: RunningGateway) -> list[Sample]:
    """Every sample of one unauthenticated scrape."""
    async with http.get(f"{gw.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample named ``name`` whose labels include ``labels``."""
    found = [s.value for s in samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, f"{name} {labels}: {found}"
    return found[0] if found else None


async def test_metrics_show_polls_devices_site_flows_and_build(
    gateway: RunningGateway, http: aiohttp.ClientSession, auth: dict[str, str],
) -> None:
    samples = await scrape(http, gateway)
    assert value(samples, "energy_gateway_build_info") == 1.0
    build = next(s for s in samples if s.name == "energy_gateway_build_info")
    assert set(build.labels) == {"version", "python"}
    polls = value(samples, "energy_gateway_poll_duration_seconds_count", site_id=SITE,
                  device="inverter")
    assert polls is not None
    assert polls >= 1
    assert value(samples, "energy_gateway_device_online", site_id=SITE, device="inverter",
                 type="sunspec") == 1.0
    assert value(samples, "energy_gateway_site_online", site_id=SITE) == 1.0
    age = value(samples, "energy_gateway_device_data_age_seconds", site_id=SITE,
                device="inverter")
    assert age is not None
    assert 0 <= age < 5

    # The gauges are the site's reading: the same numbers as live_status at the same telemetry.
    async def both() -> tuple[dict[str, float], list[Sample]]:
        async with http.get(f"{gateway.url}/api/1/energy_sites/{SITE_ID}/live_status",
                            headers=auth) as resp:
            live = (await resp.json())["response"]
        return live, await scrape(http, gateway)

    def agree(pair: tuple[dict[str, float], list[Sample]]) -> bool:
        live, got = pair
        return all(value(got, "energy_gateway_site_power_watts", site_id=SITE, flow=flow)
                   == live[key] for flow, key in
                   (("solar", "solar_power"), ("battery", "battery_power"),
                    ("grid", "grid_power"), ("load", "load_power"))) and \
            value(got, "energy_gateway_site_soc_percent", site_id=SITE) == \
            live["percentage_charged"]

    # a poll can land between the two requests: within a few polls they agree
    await eventually(both, agree, timeout=5)


async def test_a_scraper_that_prefers_openmetrics_gets_it(
    gateway: RunningGateway, http: aiohttp.ClientSession,
) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    async with http.get(f"{gateway.url}/metrics", headers={"Accept": accept}) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        text = await resp.text()
    # the OpenMetrics parser (untyped) insists on the closing "# EOF"
    names = {f.name for f in openmetrics_families(text)}  # type: ignore[no-untyped-call]
    assert {"energy_gateway_poll_duration_seconds", "energy_gateway_device_online",
            "energy_gateway_build"} <= names


async def test_commands_are_timed_by_command_and_outcome(
    gateway: RunningGateway, http: aiohttp.ClientSession, auth: dict[str, str],
) -> None:
    url = f"{gateway.url}/api/1/energy_sites/{SITE_ID}/backup"
    async with http.post(url, json={"backup_reserve_percent": 35}, headers=auth) as resp:
        assert resp.status == 200
    samples = await scrape(http, gateway)
    assert value(samples, "energy_gateway_command_duration_seconds_count", command="backup",
                 outcome="confirmed") == 1.0
    total = value(samples, "energy_gateway_command_duration_seconds_sum", command="backup",
                  outcome="confirmed")
    assert total is not None
    assert total > 0


async def test_poll_errors_and_offline_devices_are_counted(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    config = gateway_config(sim, tmp_path / "data", stale_after_s=0.6)
    async with start_gateway(config) as gw:
        async with http.post(f"{sim.control_url}/homes/home-1001/devices/inverter/faults",
                             json={"refuse_connections": True}) as resp:
            assert resp.status == 200
        async with http.post(f"{sim.control_url}/homes/home-1001/devices/inverter/drop") as resp:
            assert resp.status == 200

        def offline_with_errors(samples: list[Sample]) -> bool:
            errors = sum(s.value for s in samples if s.name == "energy_gateway_poll_errors_total"
                         and s.labels.get("device") == "inverter")
            return errors >= 1 and value(samples, "energy_gateway_device_online",
                                         site_id=SITE, device="inverter") == 0.0

        samples = await eventually(lambda: scrape(http, gw), offline_with_errors, timeout=10)
        assert value(samples, "energy_gateway_site_online", site_id=SITE) == 0.0
        # no site sums from a site that is offline
        assert value(samples, "energy_gateway_site_power_watts", site_id=SITE, flow="solar") is None
        kinds = {s.labels["kind"] for s in samples if s.name == "energy_gateway_poll_errors_total"}
        assert kinds
        assert all(k.isidentifier() for k in kinds)  # exception class names, not messages


async def test_rate_limited_requests_are_counted_by_plan(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    config = gateway_config(sim, tmp_path / "data", plans={"standard": Plan(per_minute=2)})
    async with start_gateway(config) as gw:
        headers = {"Authorization": f"Bearer {token()}"}
        statuses = []
        for _ in range(4):
            async with http.get(f"{gw.url}/api/1/products", headers=headers) as resp:
                statuses.append(resp.status)
        assert statuses.count(429) == 2
        samples = await scrape(http, gw)
        assert value(samples, "energy_gateway_rate_limited_requests_total", plan="standard") == 2.0


async def test_drift_reapplications_are_counted(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    async with start_gateway() as gw:
        before = value(await scrape(http, gw), "energy_gateway_drift_reapplications_total",
                       site_id=SITE) or 0.0
        # a reboot puts the factory reserve (20 %) back: the gateway re-applies its own
        await gw.site.command("backup", {"backup_reserve_pct": 45})
        await sim.homes["home-1001"].device("inverter").reboot()
        await eventually(lambda: scrape(http, gw), lambda s: (value(
            s, "energy_gateway_drift_reapplications_total", site_id=SITE) or 0.0) > before,
            timeout=10)
        await eventually(lambda: sim.homes["home-1001"].truth().reserve_pct == 45)


async def test_metrics_carry_no_secret_and_each_gateway_its_own_registry(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    bearer = token()
    async with start_gateway() as first:
        async with http.get(f"{first.url}/api/1/products",
                            headers={"Authorization": f"Bearer {bearer}"}) as resp:
            assert resp.status == 200
        await first.site.command("backup", {"backup_reserve_pct": 30})
        async with http.get(f"{first.url}/metrics") as resp:
            text = await resp.text()
        for secret in (SECRET, bearer, bearer.split(".")[2]):
            assert secret not in text
        async with start_gateway(gateway_config(sim, tmp_path / "second")) as second:
            fresh = await scrape(http, second)
            # the first gateway's command is not in the second's registry
            assert value(fresh, "energy_gateway_command_duration_seconds_count",
                         command="backup", outcome="confirmed") is None
