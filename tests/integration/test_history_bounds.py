"""The worst history requests a read-only token can send get bounded answers and stall nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest

from gateway.core.history import BUCKET, MAX_ENTRIES, Bucket, FlowEnergy, bucket_start
from gateway.runtime.storage import DB_NAME, Storage
from gateway.runtime.storage.history import HistoryStore
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE
from simulator import Simulator
from tests.helpers import SITE_ID, gateway_config, token
from tests.integration.conftest import GatewayFactory

# More than MAX_ENTRIES hours of 5-minute buckets (~124,000 rows): even clipped to the data, the
# 1970 window with period=day is too long for one answer, and the largest answer that is allowed
# (MAX_ENTRIES hourly entries) has a full year of data behind it.
SEED_DAYS = 430
SEED_OUTAGES = 300
# A JSON entry of the energy series is ~800 bytes; 1 KiB per entry bounds the largest answer.
MAX_BODY = MAX_ENTRIES * 1024
# GET /status must answer within the gateway's default poll interval (1 s): a loop that cannot
# answer /status within it cannot start its polls on time either. The defect held /status for
# ~11 s; a healthy loop answers in milliseconds, so 1 s leaves room for a shared, noisy machine.
STATUS_BOUND_S = 1.0
# RSS growth of the whole test process (gateway, simulator and client): the defect took ~1 GB
# for one such request and ~3 GB for three. Bounded answers cost one ~8 MB body being built at a
# time (with its Python objects) plus the client's copies of the bodies it reads: 55-80 MiB
# measured, so 256 MiB is far from both.
RSS_BOUND = 256 * 2**20
# The request, with the end a year ahead instead of the day it was filed (2026-11-29),
# so that the window always holds all the seeded data.
WINDOW_1970 = (f"start_date=1970-01-01T00:00:00Z"
               f"&end_date={datetime.now(UTC).year + 1}-11-29T00:00:00Z")
WIDEST = "start_date=0002-01-01T00:00:00Z&end_date=9998-12-31T23:59:59Z"
PERIODS = ("day", "week", "month", "year", "lifetime")


def _energy(minute_of_day: int) -> FlowEnergy:
    """A plausible 5-minute bucket (Wh): solar by day into home, battery and grid; grid at night."""
    sun = max(0.0, 1.0 - abs(minute_of_day / 60 - 13) / 6)
    return FlowEnergy(solar_to_home=40 * sun, solar_to_battery=60 * sun, solar_to_grid=90 * sun,
                      battery_to_home=0 if sun else 25, grid_to_home=0 if sun else 15)


_DAY_PROFILE = [_energy(minute) for minute in range(0, 24 * 60, 5)]


async def _seed(path: Path, now: datetime) -> datetime:
    """Write SEED_DAYS of buckets and SEED_OUTAGES outages through the real store."""
    first = bucket_start(now - timedelta(days=SEED_DAYS))
    last = bucket_start(now - timedelta(hours=1))
    count = int((last - first) / BUCKET)
    async with Storage(path) as storage:
        store = HistoryStore(storage)
        for chunk in range(0, count, 20_000):
            starts = (first + i * BUCKET for i in range(chunk, min(chunk + 20_000, count)))
            await store.add_buckets(SITE_ID, [
                Bucket(s, _DAY_PROFILE[(s.hour * 60 + s.minute) // 5]) for s in starts])
        step = (last - first) / SEED_OUTAGES
        for i in range(SEED_OUTAGES):
            await store.open_outage(SITE_ID, first + i * step)
            await store.close_outage(SITE_ID, first + i * step + timedelta(minutes=7))
    return first


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datetime]:
    """A gateway database with more than a year of history for site 1001 (seeded once per module)."""
    path = tmp_path_factory.mktemp("seed") / DB_NAME
    first = asyncio.run(_seed(path, datetime.now(UTC)))
    return path, first


@pytest.fixture
def data_dir(seeded: tuple[Path, datetime], tmp_path: Path) -> Path:
    """A gateway data directory holding a copy of the seeded database."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(seeded[0], data / DB_NAME)
    return data


def _rss() -> int:
    """This process's resident set size in bytes (/proc/self/statm counts pages)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worst_requests() -> list[tuple[str, int]]:
    """The most expensive history queries there are (relative to the site's URL), cheapest
    first, with the status each must get."""
    # 430 days of hourly entries are too many for one answer, even counted from the data
    requests = [(f"calendar_history?kind=energy&period={period}&{window}",
                 400 if period == "day" else 200)
                for window in (WINDOW_1970, WIDEST) for period in reversed(PERIODS)]
    # a long window wholly before the data: nothing clips it
    requests.append(("calendar_history?kind=energy&period=day"
                     "&start_date=1970-01-01T00:00:00Z&end_date=2000-01-01T00:00:00Z", 400))
    # the largest answer that is allowed: MAX_ENTRIES hourly entries up to now
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    requests.append(("calendar_history?kind=energy&period=day&time_zone=UTC"
                     f"&start_date={end - timedelta(hours=MAX_ENTRIES):%Y-%m-%dT%H:%M:%SZ}"
                     f"&end_date={end:%Y-%m-%dT%H:%M:%SZ}", 200))
    requests.append((f"calendar_history?kind=backup&period=day&{WINDOW_1970}", 200))
    requests.append((f"calendar_history?kind=backup&period=lifetime&{WIDEST}", 200))
    requests.append(("calendar_history?kind=backup&period=lifetime", 200))
    requests.append((f"telemetry_history?kind=charge&{WIDEST}", 200))
    return requests


async def _get(http: aiohttp.ClientSession, base: str, path: str) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token(scopes=(READ_SCOPE,))}"}
    async with http.get(f"{base}/api/1/energy_sites/{SITE_ID}/{path}", headers=headers) as resp:
        return resp.status, await resp.read()


def _check_answer(path: str, expected: int, status: int, body: bytes) -> None:
    """Bounded, and either the data or a 400 that names the parameter, the limit and the fix."""
    assert len(body) <= MAX_BODY, (path, len(body))
    doc = orjson.loads(body)
    assert status == expected, (path, doc)
    if status == 400:
        assert doc["response"] is None
        assert doc["error"] == "invalid_field"
        description = doc["error_description"]
        assert description.startswith("start_date: ")
        assert f"at most {MAX_ENTRIES}" in description
        assert "ask for a later start_date or an earlier end_date" in description
    elif "kind=energy" in path:
        entries = len(doc["response"]["time_series"])
        assert 1 <= entries <= MAX_ENTRIES
        assert entries == MAX_ENTRIES or "time_zone=UTC" not in path


async def test_each_worst_history_request_gets_a_bounded_answer(
    start_gateway: GatewayFactory, sim: Simulator, data_dir: Path, seeded: tuple[Path, datetime]
) -> None:
    first = seeded[1]
    async with start_gateway(gateway_config(sim, data_dir)) as gateway, \
            aiohttp.ClientSession() as http:
        for path, expected in _worst_requests():  # cheapest first: an unbounded one fails fast
            status, body = await _get(http, gateway.url, path)
            _check_answer(path, expected, status, body)
        # the 1970 window is clipped to the first data: its series starts on the first day
        status, body = await _get(http, gateway.url, f"calendar_history?kind=energy&period=month&"
                                  f"{WINDOW_1970}")
        series = orjson.loads(body)["response"]["time_series"]
        first_local = first.astimezone(gateway.site.tz).date()
        assert datetime.fromisoformat(series[0]["timestamp"]).date() == first_local
        assert len(series) in (SEED_DAYS + 1, SEED_DAYS + 2)  # up to today, local
        assert sum(e["total_solar_generation"] for e in series) > 0
        status, body = await _get(http, gateway.url, "calendar_history?kind=backup&period=lifetime")
        assert orjson.loads(body)["response"]["total_events"] == SEED_OUTAGES


async def test_concurrent_worst_requests_leave_status_polls_and_commands_alone(
    start_gateway: GatewayFactory, sim: Simulator, data_dir: Path
) -> None:
    async with start_gateway(gateway_config(sim, data_dir)) as gateway, \
            aiohttp.ClientSession() as http:
        site = gateway.site
        status, _ = await _get(http, gateway.url, "calendar_history?kind=energy&period=day")
        assert status == 200
        rss_before = _rss()
        status_latencies: list[float] = []
        rss_peak = rss_before
        offline_seen = False
        storm_done = asyncio.Event()

        async def probe() -> None:
            nonlocal rss_peak, offline_seen
            while not storm_done.is_set():
                started = time.monotonic()
                async with http.get(f"{gateway.url}/status") as resp:
                    assert resp.status == 200
                    await resp.read()
                status_latencies.append(time.monotonic() - started)
                rss_peak = max(rss_peak, _rss())
                offline_seen = offline_seen or bool(site.offline())
                await asyncio.sleep(0.05)  # pacing the probe, not waiting for a state

        first_answer = asyncio.Event()
        reserves: list[int] = []

        async def commands() -> None:
            await first_answer.wait()  # the storm is under way: commands land in the middle of it
            headers = {"Authorization": f"Bearer {token(scopes=(COMMAND_SCOPE,))}"}
            while not storm_done.is_set():
                reserve = 30 + len(reserves) % 20
                async with http.post(f"{gateway.url}/api/1/energy_sites/{SITE_ID}/backup",
                                     json={"backup_reserve_percent": reserve},
                                     headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                reserves.append(reserve)
                await asyncio.sleep(0.1)  # pacing: a client's commands, not a flood

        async def one(path: str) -> tuple[int, bytes]:
            answer = await _get(http, gateway.url, path)
            first_answer.set()
            return answer

        async def storm() -> list[tuple[str, int, int, bytes]]:
            # three at once of the defect's request for each period, of the largest answer
            # allowed and of the longest outage list
            heaviest = [(path, expected) for path, expected in _worst_requests()
                        if WINDOW_1970 in path or "time_zone=UTC" in path
                        or path == "calendar_history?kind=backup&period=lifetime"]
            requests = heaviest * 3
            try:
                answers = await asyncio.gather(*(one(path) for path, _ in requests))
            finally:
                storm_done.set()
            return [(p, e, s, b) for (p, e), (s, b) in zip(requests, answers, strict=True)]

        taken_before = site.reading().taken_at
        started = time.monotonic()
        _, _, answers = await asyncio.gather(probe(), commands(), storm())
        storm_s = time.monotonic() - started

        for path, expected, status, body in answers:
            _check_answer(path, expected, status, body)
        assert reserves, "no command completed during the storm"
        assert sim.homes["home-1001"].truth().reserve_pct == reserves[-1]
        assert not offline_seen
        assert site.reading().taken_at > taken_before
        assert status_latencies, "the probe never got an answer"
        worst_status = max(status_latencies)
        growth = rss_peak - rss_before
        print(f"storm {storm_s:.1f} s, {len(answers)} requests, {len(reserves)} commands; "
              f"/status worst "
              f"{worst_status * 1000:.0f} ms over {len(status_latencies)} probes; RSS growth "
              f"{growth / 2**20:.0f} MiB")
        assert worst_status < STATUS_BOUND_S
        assert growth < RSS_BOUND
