"""Every body the gateway serves is its response model, and site_info's former filler values
(installation date, site meter limits) come from the config or the gateway's first start."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel

from gateway.core.config import Config
from gateway.web.keys import GATEWAY
from gateway.web.renderers.models import (
    BackupHistoryResponse,
    ChargeHistoryResponse,
    CommandResponse,
    EmptyStringResponse,
    EnergyHistoryResponse,
    Health,
    LiveStatusResponse,
    ProductsResponse,
    SiteInfoResponse,
)
from simulator import Simulator
from tests.bodies import assert_body_is
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory, RunningGateway
from tests.samples import pge_like_sample

AUTH = {"Authorization": f"Bearer {token()}"}
SITE = f"/api/1/energy_sites/{SITE_ID}"


async def fetch(gateway: RunningGateway, model: type[BaseModel], path: str,
                json: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``json`` to) ``path``; the body checked against ``model``, decoded."""
    async with aiohttp.ClientSession() as http, http.request(
            "GET" if json is None else "POST", f"{gateway.url}{path}", headers=AUTH,
            json=json) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        return assert_body_is(model, await resp.read())


def with_site(config: Config, **changes: Any) -> Config:
    site = config.sites[0].model_copy(update=changes)
    return config.model_copy(update={"sites": [site]})


async def test_every_body_is_its_model(gateway: RunningGateway) -> None:
    products = await fetch(gateway, ProductsResponse, "/api/1/products")
    assert "percentage_charged" in products["response"][0]  # online: live fields present
    await fetch(gateway, LiveStatusResponse, f"{SITE}/live_status")
    info = await fetch(gateway, SiteInfoResponse, f"{SITE}/site_info")
    assert "tariff_content_v2" not in info["response"]  # none set yet: absent, not null
    await fetch(gateway, EnergyHistoryResponse, f"{SITE}/calendar_history?kind=energy&period=day")
    await fetch(gateway, BackupHistoryResponse, f"{SITE}/calendar_history?kind=backup&period=day")
    await fetch(gateway, ChargeHistoryResponse, f"{SITE}/telemetry_history?kind=charge")
    await fetch(gateway, Health, "/health")
    tariff = pge_like_sample()
    await fetch(gateway, CommandResponse, f"{SITE}/time_of_use_settings",
                {"tou_settings": {"tariff_content_v2": tariff}})
    await fetch(gateway, EmptyStringResponse, f"{SITE}/grid_import_export",
                {"customer_preferred_export_rule": "never"})
    info = await fetch(gateway, SiteInfoResponse, f"{SITE}/site_info")
    assert info["response"]["tariff_content_v2"] == tariff  # as sent, through its wire model
    assert info["response"]["components"]["non_export_configured"] is True


async def test_products_of_an_offline_site_is_its_model_without_live_fields(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    async with start_gateway(gateway_config(sim, tmp_path / "data", stale_after_s=1.0)) as gateway:
        await sim.homes["home-1001"].device("inverter").stop()
        await eventually(gateway.site.offline, timeout=10)
        products = await fetch(gateway, ProductsResponse, "/api/1/products")
        entry = products["response"][0]
        assert entry["components"]["battery"] is True
        assert not {"percentage_charged", "energy_left", "total_pack_energy",
                    "battery_power"} & set(entry)
        await fetch(gateway, SiteInfoResponse, f"{SITE}/site_info")  # learned: still answers


async def test_site_info_serves_the_configured_installation_date_and_meter_limits(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = with_site(gateway_config(sim, tmp_path / "data"),
                       installation_date="2023-05-01T00:00:00+02:00",
                       max_site_meter_power_w=11_500, min_site_meter_power_w=-5_000)
    async with start_gateway(config) as gateway:
        info = (await fetch(gateway, SiteInfoResponse, f"{SITE}/site_info"))["response"]
    assert info["installation_date"] == "2023-05-01T00:00:00+02:00"
    assert (info["max_site_meter_power_ac"], info["min_site_meter_power_ac"]) == (11_500, -5_000)


async def test_without_configured_values_site_info_has_no_filler(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    # Issue 10: a fixed "2024-01-01" installation date and ±1e9 W meter limits were served
    # where nothing was configured (a client such as Predbat reads the maximum as the site's
    # AC limit). Now: the gateway's first start, and no meter limit keys at all.
    async with start_gateway(gateway_config(sim, tmp_path / "data")) as gateway:
        info = (await fetch(gateway, SiteInfoResponse, f"{SITE}/site_info"))["response"]
        assert "max_site_meter_power_ac" not in info
        assert "min_site_meter_power_ac" not in info
        started = gateway.app[GATEWAY].first_started_at
        assert started is not None
        assert info["installation_date"] == started.astimezone(gateway.site.tz).isoformat(
            timespec="seconds")
        # The stored first start is what counts (an upgraded install: older than this process).
        first = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
        gateway.app[GATEWAY].first_started_at = first
        info = (await fetch(gateway, SiteInfoResponse, f"{SITE}/site_info"))["response"]
        assert info["installation_date"] == "2025-03-01T10:30:00+01:00"  # the site's zone
