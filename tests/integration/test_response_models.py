"""Every body the gateway serves is its response model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel

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
