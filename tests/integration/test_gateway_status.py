"""GET /api/1/energy_sites/{id}/gateway_status: the status page's devices, alerts and journal."""

from __future__ import annotations

import aiohttp

from gateway.web.renderers.models import GatewayStatusResponse
from simulator import Simulator
from tests.bodies import assert_body_is
from tests.helpers import SITE_ID, eventually, token
from tests.integration.conftest import RunningGateway


async def test_devices_journal_and_alerts_as_the_model_says(
    gateway: RunningGateway, sim: Simulator, http: aiohttp.ClientSession, auth: dict[str, str],
) -> None:
    site_url = f"{gateway.url}/api/1/energy_sites/{SITE_ID}"
    for pct in (30, 35):
        async with http.post(f"{site_url}/backup", json={"backup_reserve_percent": pct},
                             headers=auth) as resp:
            assert resp.status == 200
    async with http.get(f"{site_url}/gateway_status?journal_limit=1", headers=auth) as resp:
        assert resp.status == 200
        body = assert_body_is(GatewayStatusResponse, await resp.read())["response"]
    assert body["name"] == "Test Home"
    [device] = body["devices"]
    assert (device["name"], device["type"], device["quality"]) == ("inverter", "sunspec", "fresh")
    assert device["last_poll"].endswith(("+01:00", "+02:00"))  # the site's zone, Europe/Berlin
    assert [(e["command"], e["changes"], e["status"]) for e in body["journal"]] == [
        ("backup", {"backup_reserve_pct": 35}, "confirmed")]
    assert body["alerts"] == []

    async with http.post(f"{sim.control_url}/homes/home-1001/storm", json={"active": True}):
        pass
    async with http.post(f"{sim.control_url}/homes/home-1001/grid", json={"up": False}):
        pass

    async def kinds() -> set[str]:
        async with http.get(f"{site_url}/gateway_status", headers=auth) as resp:
            return {a["kind"] for a in (await resp.json())["response"]["alerts"]}

    await eventually(kinds, lambda k: "grid_outage" in k, timeout=10)


async def test_bad_journal_limits_and_missing_scope_are_refused(
    gateway: RunningGateway, http: aiohttp.ClientSession, auth: dict[str, str],
) -> None:
    site_url = f"{gateway.url}/api/1/energy_sites/{SITE_ID}/gateway_status"
    for bad in ("-1", "101", "x", "1e2", "²", "99999999999999999999"):
        async with http.get(site_url, params={"journal_limit": bad}, headers=auth) as resp:
            assert resp.status == 400, bad
            assert "journal_limit" in (await resp.json())["error_description"]
    commands_only = {"Authorization": f"Bearer {token(scopes=('energy_cmds',))}"}
    async with http.get(site_url, headers=commands_only) as resp:
        assert resp.status == 403
    other_site = {"Authorization": f"Bearer {token(sites=[9999])}"}
    async with http.get(site_url, headers=other_site) as resp:
        assert resp.status in (403, 404)
