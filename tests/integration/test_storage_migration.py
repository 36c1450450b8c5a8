"""A gateway started on the two-file layout serves what the old files held: the desired reserve
reaches the device, the energy and outages are answered, a revoked token stays revoked, and the
interrupted command is closed; the old history file is kept, renamed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.core.settings import SiteSettings
from gateway.runtime.storage import DB_NAME
from gateway.web.auth import READ_SCOPE, sign, token_claims
from gateway.web.keys import GATEWAY
from simulator import Simulator
from tests.helpers import SECRET, SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory
from tests.legacy_layout import (
    T0,
    old_buckets,
    record_old_token,
    write_old_gateway_db,
    write_old_history_db,
)


def _old_files(data: Path, revoked_jti: str) -> None:
    settings = SiteSettings(backup_reserve_pct=47).to_json()
    write_old_gateway_db(data / DB_NAME, [(SITE_ID, orjson.dumps(settings).decode(),
                                           T0.isoformat())])
    with contextlib.closing(sqlite3.connect(data / DB_NAME, isolation_level=None)) as db:
        now = int(time.time())
        record_old_token(db, revoked_jti, "old-phone", now, now + 3600, now, sites="*")
    write_old_history_db(data / "history.sqlite3", 2)


async def _get(http: aiohttp.ClientSession, url: str, bearer: str) -> tuple[int, Any]:
    async with http.get(url, headers={"Authorization": f"Bearer {bearer}"}) as resp:
        return resp.status, await resp.json()


async def test_a_gateway_on_the_two_file_layout_serves_what_the_old_files_held(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    claims = token_claims(sub="old-phone", scopes=[READ_SCOPE], sites=None, ttl_s=3600,
                          now_s=time.time())
    revoked = sign(SECRET, claims)
    await asyncio.to_thread(_old_files, data, claims["jti"])
    site_url = f"/api/1/energy_sites/{SITE_ID}"
    config = gateway_config(sim, data)
    config = config.model_copy(update={"gateway": config.gateway.model_copy(
        update={"journal_retention_days": 3650})})  # keep the old entries to look at them
    async with start_gateway(config) as gateway, \
            aiohttp.ClientSession() as http:
        base = gateway.url + site_url
        # the desired reserve of the old settings table is put on the device
        await eventually(lambda: sim.homes["home-1001"].truth().reserve_pct == 47)
        # the old energy buckets answer a history query: every Wh of the two days
        status, body = await _get(http, f"{base}/calendar_history?kind=energy&period=day"
                                  "&time_zone=UTC&start_date=2025-06-01T00:00:00Z"
                                  "&end_date=2025-06-02T23:59:59Z", token())
        assert status == 200, body
        solar = sum(e["total_solar_generation"] for e in body["response"]["time_series"])
        want = sum(sum(r[2:5]) for r in old_buckets() if r[0] == str(SITE_ID))
        assert solar == pytest.approx(want, abs=0.01)
        # the old outages, the one left open too (closed now: the simulated grid is up)
        status, body = await _get(http, f"{base}/calendar_history?kind=backup&period=lifetime",
                                  token())
        assert status == 200, body
        starts = [e["timestamp"][:16] for e in body["response"]["events"]]
        assert starts == ["2025-06-01T16:00", "2025-06-02T10:00", "2025-06-02T19:00"]  # Berlin
        # a token the old registry revoked stays refused
        status, body = await _get(http, f"{base}/live_status", revoked)
        assert (status, body["error_description"]) == (401, "the access token has been revoked")
        # the first start predates the upgrade: the oldest fact in the old files
        first_started_at = gateway.app[GATEWAY].first_started_at
        assert first_started_at is not None
        assert first_started_at < T0
        journal = await gateway.site._store.commands(SITE_ID)
        # the old gateway's pending command is closed as interrupted; the rest as they were
        assert [e["status"] for e in journal] == ["interrupted", "kept", "rejected", "confirmed"]
    assert sorted(p.name for p in data.iterdir() if "sqlite3" in p.name
                  and not p.name.endswith(("-wal", "-shm"))) == [DB_NAME, "history.sqlite3.migrated"]
