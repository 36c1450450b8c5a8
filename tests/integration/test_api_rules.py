"""Auth, scopes, site isolation, rate limits, bad input, restart persistence and offline devices."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tesla_fleet_api import TeslaFleetApi
from tesla_fleet_api.exceptions import (
    Forbidden,
    InvalidField,
    NotFound,
    OAuthExpired,
    RateLimited,
    TeslaFleetError,
    VehicleOffline,
)

from gateway.core.config import Plan
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE
from simulator import Simulator
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory, RunningGateway
from tests.samples import pge_like_sample

ENVELOPE_KEYS = {"response", "error", "error_description"}


def site_url(gateway: RunningGateway, resource: str, site_id: int = SITE_ID) -> str:
    return f"{gateway.url}/api/1/energy_sites/{site_id}/{resource}"


async def fleet_error(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["response"] is None
    return body


async def test_status_and_health_need_no_token(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway.url}/status") as resp:
        assert resp.status == 200
        assert await resp.text() == "ok"
    async with http.get(f"{gateway.url}/health") as resp:
        assert resp.status == 200
        body = await resp.json()
    device = body["sites"][str(SITE_ID)]["devices"]["inverter"]
    assert device["quality"] == "fresh"
    assert device["connected"] is True
    assert device["data_age_s"] < 5
    assert "secret" not in str(body).lower()


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic dXNlcjpwYXNz"])
async def test_missing_or_bad_token_is_401(
    gateway: RunningGateway, http: aiohttp.ClientSession, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with http.get(site_url(gateway, "live_status"), headers=headers) as resp:
        assert resp.status == 401
        await fleet_error(resp)


async def test_expired_token_is_401_token_expired(gateway: RunningGateway) -> None:
    expired = token(ttl_s=1, now_s=time.time() - 3600)
    async with aiohttp.ClientSession() as session:
        site = TeslaFleetApi(session=session, access_token=expired,
                             server=gateway.url).energySites.create(SITE_ID)
        with pytest.raises(OAuthExpired):
            await site.live_status()


async def test_missing_scope_is_403_with_the_exact_body(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    read_only = {"Authorization": f"Bearer {token(scopes=(READ_SCOPE,))}"}
    async with http.post(site_url(gateway, "backup"), headers=read_only,
                         json={"backup_reserve_percent": 50}) as resp:
        assert resp.status == 403
        assert await resp.json() == {"response": None, "error": "Unauthorized missing scopes",
                                     "error_description": ""}
    cmds_only = {"Authorization": f"Bearer {token(scopes=(COMMAND_SCOPE,))}"}
    async with http.get(site_url(gateway, "live_status"), headers=cmds_only) as resp:
        assert resp.status == 403
    async with aiohttp.ClientSession() as session:
        site = TeslaFleetApi(session=session, access_token=token(scopes=(READ_SCOPE,)),
                             server=gateway.url).energySites.create(SITE_ID)
        with pytest.raises(Forbidden):
            await site.backup(50)


async def test_sites_outside_the_token_and_unknown_sites_are_404(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    other_site = {"Authorization": f"Bearer {token(sites=[4242])}"}
    async with http.get(site_url(gateway, "live_status"), headers=other_site) as resp:
        assert resp.status == 404
        await fleet_error(resp)
    async with http.get(f"{gateway.url}/api/1/products", headers=other_site) as resp:
        assert (await resp.json()) == {"response": [], "count": 0}
    async with aiohttp.ClientSession() as session:
        api = TeslaFleetApi(session=session, access_token=token(), server=gateway.url)
        with pytest.raises(NotFound):
            await api.energySites.create(999).live_status()


async def test_rate_limit_headers_and_429(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = gateway_config(sim, tmp_path / "data", plans={"standard": Plan(per_minute=3)})
    async with start_gateway(config) as gateway, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {token()}"}
        remaining = []
        for _ in range(3):
            async with http.get(site_url(gateway, "site_info"), headers=auth) as resp:
                if resp.status == 429:  # a window boundary can fall inside the loop
                    break
                assert resp.status == 200
                for prefix in ("RateLimit-", "X-RateLimit-"):
                    for name in ("Limit", "Remaining", "Reset"):
                        assert f"{prefix}{name}" in resp.headers
                remaining.append(int(resp.headers["RateLimit-Remaining"]))
        async with http.get(site_url(gateway, "site_info"), headers=auth) as resp:
            assert resp.status == 429
            retry_after = int(resp.headers["Retry-After"])
            assert 1 <= retry_after <= 60
            await fleet_error(resp)
        assert remaining == sorted(remaining, reverse=True)
        site = TeslaFleetApi(session=http, access_token=token(),  # a fresh token: own budget
                             server=gateway.url).energySites.create(SITE_ID)
        for _ in range(3):  # spend this token's budget (window boundaries may refill it once)
            await site.live_status()
        with pytest.raises(RateLimited) as info:
            await site.live_status()
        assert isinstance(info.value.data, dict)
        assert int(info.value.data["after"]) >= 1


@pytest.mark.parametrize(
    ("resource", "body", "field"),
    [
        ("backup", {"backup_reserve_percent": 101}, "backup_reserve_percent"),
        ("backup", {"backup_reserve_percent": -1}, "backup_reserve_percent"),
        ("backup", {"backup_reserve_percent": "50"}, "backup_reserve_percent"),
        ("backup", {"backup_reserve_percent": 50.5}, "backup_reserve_percent"),
        ("backup", {"backup_reserve_percent": None}, "backup_reserve_percent"),
        ("backup", {"backup_reserve_percent": True}, "backup_reserve_percent"),
        ("backup", {}, "backup_reserve_percent"),
        ("backup", {"backup_reserve_percent": 50, "extra": 1}, "extra"),
        ("operation", {"default_real_mode": "turbo"}, "default_real_mode"),
        ("storm_mode", {"enabled": "yes"}, "enabled"),
        ("storm_mode", {"enabled": 1}, "enabled"),
        ("grid_import_export", {"customer_preferred_export_rule": "sometimes"},
         "customer_preferred_export_rule"),
        ("grid_import_export", {"disallow_charge_from_grid_with_solar_installed": "no"},
         "disallow_charge_from_grid_with_solar_installed"),
        ("off_grid_vehicle_charging_reserve", {"off_grid_vehicle_charging_reserve_percent": 200},
         "off_grid_vehicle_charging_reserve_percent"),
        ("time_of_use_settings", {"tou_settings": {}}, "tou_settings.tariff_content_v2"),
        ("time_of_use_settings", {"tou_settings": {"tariff_content_v2": {"version": 1}}},
         "tou_settings.tariff_content_v2"),
    ],
)
async def test_bad_bodies_are_400_invalid_field_and_change_nothing(
    gateway: RunningGateway, sim: Simulator, http: aiohttp.ClientSession,
    auth: dict[str, str], resource: str, body: dict[str, Any], field: str,
) -> None:
    before = sim.homes["home-1001"].truth()
    async with http.post(site_url(gateway, resource), headers=auth, json=body) as resp:
        assert resp.status == 400
        error = await fleet_error(resp)
    assert error["error"] == "invalid_field"
    assert field in error["error_description"]
    after = sim.homes["home-1001"].truth()
    for key in ("reserve_pct", "grid_charging", "export_limit_w", "battery_command_w"):
        assert getattr(after, key) == getattr(before, key)
    async with http.get(site_url(gateway, "site_info"), headers=auth) as resp:
        assert (await resp.json())["response"]["backup_reserve_percent"] == 20


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"42"])
async def test_malformed_json_is_400_invalid_request(
    gateway: RunningGateway, http: aiohttp.ClientSession, auth: dict[str, str], raw: bytes
) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    async with http.post(site_url(gateway, "backup"), headers=headers, data=raw) as resp:
        assert resp.status == 400
        assert (await fleet_error(resp))["error"] == "invalid_request"


async def test_invalid_field_surfaces_in_tesla_fleet_api(gateway: RunningGateway) -> None:
    async with aiohttp.ClientSession() as session:
        site = TeslaFleetApi(session=session, access_token=token(),
                             server=gateway.url).energySites.create(SITE_ID)
        with pytest.raises(InvalidField):
            await site.backup(101)


async def test_unknown_path_and_method_use_the_envelope(
    gateway: RunningGateway, http: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with http.get(site_url(gateway, "nonsense"), headers=auth) as resp:
        assert resp.status == 404
        await fleet_error(resp)
    async with http.get(site_url(gateway, "backup"), headers=auth) as resp:
        assert resp.status == 405
        await fleet_error(resp)


async def test_bad_history_queries_are_400(
    gateway: RunningGateway, http: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    for query, field in (("kind=energy&period=fortnight", "period"),
                         ("kind=energy&period=day&end_date=yesterday", "end_date"),
                         ("kind=weather&period=day", "kind")):
        async with http.get(site_url(gateway, f"calendar_history?{query}"), headers=auth) as resp:
            assert resp.status == 400
            assert field in (await fleet_error(resp))["error_description"]


async def test_settings_and_tariff_survive_a_restart_and_are_reapplied(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = gateway_config(sim, tmp_path / "data")
    tariff = pge_like_sample()
    async with start_gateway(config) as gateway, aiohttp.ClientSession() as session:
        site = TeslaFleetApi(session=session, access_token=token(),
                             server=gateway.url).energySites.create(SITE_ID)
        await site.backup(42)
        await site.grid_import_export(None, "never")
        await site.time_of_use_settings(tariff)
    # someone else changes the device while the gateway is down
    home = sim.homes["home-1001"]
    device = home.device("inverter")
    async with aiohttp.ClientSession() as session:
        from pymodbus.client import AsyncModbusTcpClient

        endpoint = sim.endpoint("home-1001/inverter")
        client = AsyncModbusTcpClient(endpoint.host, port=endpoint.port, retries=0)
        await client.connect()
        await client.write_register(device.model_address(124) + 7, 5, device_id=endpoint.unit_id)
        client.close()
    assert home.truth().reserve_pct == 5
    async with start_gateway(config) as gateway, aiohttp.ClientSession() as session:
        await eventually(lambda: home.truth().reserve_pct == 42)
        assert home.truth().export_limit_w == 0
        site = TeslaFleetApi(session=session, access_token=token(),
                             server=gateway.url).energySites.create(SITE_ID)
        info = (await site.site_info())["response"]
        assert info["backup_reserve_percent"] == 42
        assert info["tariff_content_v2"] == tariff
        assert info["components"]["customer_preferred_export_rule"] == "never"


async def test_offline_device_answers_408_and_gets_the_setting_when_back(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = gateway_config(sim, tmp_path / "data", stale_after_s=1.0)
    device = sim.homes["home-1001"].device("inverter")
    async with start_gateway(config) as gateway, aiohttp.ClientSession() as session:
        site = TeslaFleetApi(session=session, access_token=token(),
                             server=gateway.url).energySites.create(SITE_ID)
        await device.stop()

        async def live_status_error() -> type[BaseException] | None:
            try:
                await site.live_status()
            except TeslaFleetError as exc:
                return type(exc)
            return None

        assert await eventually(live_status_error, lambda e: e is VehicleOffline)
        with pytest.raises(VehicleOffline) as info:
            await site.backup(66)
        assert "offline" in str(info.value.data)
        await device.start()
        await eventually(lambda: sim.homes["home-1001"].truth().reserve_pct == 66)
        assert (await site.site_info())["response"]["backup_reserve_percent"] == 66
