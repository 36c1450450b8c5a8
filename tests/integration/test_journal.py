"""Issue 9 defect 9: the command journal. Entries a killed gateway left ``pending`` are closed as
``interrupted`` at startup, entries older than ``journal_retention_days`` are pruned, and an entry
keeps the validated changes, bounded (a tariff as a summary), never the whole request body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.runtime.storage import Storage
from gateway.runtime.storage.sites import SiteStore
from simulator import Simulator
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory
from tests.samples import pge_like_sample

AUTH = {"Authorization": f"Bearer {token()}"}


async def entries(data_dir: Path) -> list[dict[str, Any]]:
    async with Storage(data_dir / "gateway.sqlite3") as storage:
        return await SiteStore(storage).commands(SITE_ID)


async def test_startup_closes_pending_entries_as_interrupted_and_prunes_old_ones(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    # What a gateway killed mid-command leaves behind, plus an entry from long ago.
    async with Storage(data_dir / "gateway.sqlite3") as storage:
        store = SiteStore(storage)
        now = datetime.now(UTC)
        await store.journal(SITE_ID, "backup", {"backup_reserve_pct": 30},
                            now - timedelta(days=200))
        await store.journal(SITE_ID, "backup", {"backup_reserve_pct": 31},
                            now - timedelta(seconds=5))
    base = gateway_config(sim, data_dir)
    config = base.model_copy(update={"gateway": base.gateway.model_copy(
        update={"journal_retention_days": 30})})
    async with start_gateway(config) as gateway:
        site = gateway.site
        await eventually(lambda: site._store.commands(SITE_ID), lambda es: len(es) == 1)
    [left] = await entries(data_dir)
    assert (left["changes"], left["status"]) == ({"backup_reserve_pct": 31}, "interrupted")
    assert left["finished_at"] is not None


async def test_the_journal_keeps_bounded_changes_not_request_bodies(
    gateway: Any, tmp_path: Path
) -> None:
    tariff = pge_like_sample()
    async with aiohttp.ClientSession() as http:
        for resource, body in (
                ("backup", {"backup_reserve_percent": 53}),
                ("time_of_use_settings", {"tou_settings": {"tariff_content_v2": tariff}})):
            async with http.post(f"{gateway.url}/api/1/energy_sites/{SITE_ID}/{resource}",
                                 json=body, headers=AUTH) as resp:
                assert resp.status == 200, await resp.text()
    tou, backup = (await entries(tmp_path / "data"))[:2]
    assert (backup["command"], backup["status"], backup["changes"]) == (
        "backup", "confirmed", {"backup_reserve_pct": 53})
    assert tou["command"] == "time_of_use_settings"
    assert set(tou["changes"]) == {"tariff"}
    assert tou["changes"]["tariff"]["bytes"] > 1000  # what was sent ...
    assert len(str(tou["changes"])) < 200  # ... is not what is kept
    assert "energy_charges" not in str(tou["changes"])
