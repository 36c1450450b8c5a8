"""Hub: K edge processes x M simulated homes, one broker, two hub replicas, PostgreSQL and Redis.

Run: ``.venv/bin/python -m bench.hub [--quick] [--edges 4] [--homes 250] [--poll-s 2]``

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres), Redis on 127.0.0.1:6379 and the
``mosquitto`` binary. It creates and drops its own database, uses its own Redis key prefix and
starts its own broker on a free port. Measures, each against a baseline in the same run:

- verified command latency through the hub vs the same command posted to the edge (p50/p99);
- live_status throughput of one hub replica vs one edge (closed loop, bench._loadgen);
- time from a device change (grid outage via the simulator's control API) to the hub's
  live_status showing it, vs to the edge's own live_status showing it (p50/p99);
- CPU (cores) and RSS of each hub replica, the broker and the edges over a quiet window,
  per 1,000 homes.

``--faults`` then runs three fault runs, each with clients sending commands through the hub
(retrying with their Idempotency-Key): the broker restarted and a replica killed; an edge killed
(SIGKILL) and restarted on its data dir; the uplink cut for ``--cut-s`` (the broker stopped, the
edges controlled directly meanwhile). After each: acknowledged commands on their edges, none run
twice, the hub's journal against the edges', and the hub's history buckets against the edges'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil
import redis.asyncio as aioredis

from bench._common import (
    FIRST_SITE_ID,
    ROOT,
    SECRET,
    bench_token,
    helper,
    machine,
    percentile,
    print_table,
    quiet_logging,
    raise_fd_limit,
)

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
SITE_STRIDE = 100_000  # edge k's sites start at FIRST_SITE_ID + k * SITE_STRIDE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """The bench's Mosquitto on a free port; ``restart`` keeps the port (sessions are lost)."""

    def __init__(self, tmpdir: Path, *, nodelay: bool = True) -> None:
        self.port = free_port()
        self.tmpdir = tmpdir
        self.conf = tmpdir / "mosquitto.conf"
        # docs/hub.md asks for set_tcp_nodelay: Mosquitto's default holds each small packet
        # (an outcome, its PUBACK) for the peer's delayed ACK, ~40 ms per hop
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "max_queued_messages 100000\n"
                             f"set_tcp_nodelay {'true' if nodelay else 'false'}\n")
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "mosquitto", "-c", str(self.conf), stdout=asyncio.subprocess.DEVNULL,
            stderr=(self.tmpdir / "mosquitto.log").open("ab"))
        for _ in range(500):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            return

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


@contextlib.asynccontextmanager
async def broker(tmpdir: Path, *, nodelay: bool = True) -> AsyncIterator[Broker]:
    running = Broker(tmpdir, nodelay=nodelay)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    name = f"egw_hub_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(f"{PG}/postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield f"{PG}/{name}"
    finally:
        conn = await asyncpg.connect(f"{PG}/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@contextlib.asynccontextmanager
async def replica(config: Path, port: int, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "--log-level", "WARNING", "--log-format", "json",
        "hub", "--config", str(config), "--port", str(port), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=log.open("ab"))
    try:
        assert proc.stdout is not None  # noqa: S101 - PIPE
        async with asyncio.timeout(60):
            while b"serving" not in await proc.stdout.readline():
                pass
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
               headers: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    async with http.post(url, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status, time.perf_counter() - started


async def loadgen(port: int, path: str, token: str, seconds: float) -> float:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench._loadgen", "--port", str(port), "--path", path, "--token", token,
        "--connections", "16", "--duration-s", str(seconds), cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    result = orjson.loads(out)
    return float(result["requests"]) / float(result["elapsed_s"])


async def start_edge(stack: contextlib.AsyncExitStack, k: int, sim: Any, *, tmpdir: Path,
                     broker_port: int, poll_s: float, log_suffix: str = "") -> Any:
    """Edge gateway process k (its data dir survives a restart: same journal, same cursor)."""
    eps = tmpdir / f"endpoints-{k}.json"
    eps.write_bytes(orjson.dumps(sim.hello["endpoints"]))
    return await stack.enter_async_context(helper(
        "bench._gwproc", "--endpoints", str(eps), "--data-dir", str(tmpdir / f"data-{k}"),
        "--poll-s", str(poll_s), "--first-site", str(FIRST_SITE_ID + k * SITE_STRIDE),
        "--uplink", f"127.0.0.1:{broker_port}", "--gateway-id", f"edge-{k}",
        "--timeout-s", str(max(1.0, poll_s)),
        "--log-level", os.environ.get("BENCH_GW_LOG", "WARNING"),
        log_path=tmpdir / f"gw-{k}{log_suffix}.log"))


@dataclass
class Fleet:
    """What the fault runs act on: the broker, the replicas, the edges and their simulators."""

    stack: contextlib.AsyncExitStack
    mqtt: Broker
    hub_yaml: Path
    ports: list[int]
    hubs: list[asyncio.subprocess.Process]
    sims: list[Any]
    gws: list[Any]
    tmpdir: Path
    edges: int
    homes: int
    poll_s: float


async def command_run(http: aiohttp.ClientSession, auth: dict[str, str], fleet: Fleet, *,
                      title: str, prefix: str, chaos: Callable[[], Awaitable[None]],
                      client_deadline_s: float = 90.0) -> None:
    """Commands through the hub while ``chaos`` runs; clients retry with their Idempotency-Key.
    Then: every acknowledged command is the edge's setting, none ran twice, PostgreSQL's journal
    agrees with the edges'."""
    hub_urls = [f"http://127.0.0.1:{p}" for p in fleet.ports]
    edges, tmpdir = fleet.edges, fleet.tmpdir
    journal_before = [await asyncio.to_thread(_edge_rows, tmpdir / f"data-{k}", _JOURNAL)
                      for k in range(edges)]
    sites = [(k, FIRST_SITE_ID + k * SITE_STRIDE + i)
             for k in range(edges) for i in range(min(fleet.homes, 10))]
    acknowledged: dict[str, tuple[int, int, int]] = {}  # key -> (edge, site, reserve)
    statuses: dict[int, int] = {}
    retries = 0
    sent: list[tuple[str, int]] = []

    chaos_over = asyncio.Event()

    async def client(k: int, site: int, offset: int) -> None:
        # commands one after another (0.3 s apart) for as long as the fault lasts, at least 6,
        # and 2 more once it is over: at ~10 ms a command, a fixed count ended before the fault
        nonlocal retries
        after = 0
        for n in itertools.count():
            if n >= 6 and chaos_over.is_set():
                after += 1
                if after > 2:
                    break
            key = f"{prefix}-{site}-{n}"
            reserve = 20 + (offset * 7 + n * 5 + len(prefix)) % 60
            sent.append((key, k))
            deadline = time.monotonic() + client_deadline_s
            attempt = 0
            while time.monotonic() < deadline:
                url = hub_urls[(attempt + n) % 2] + f"/api/1/energy_sites/{site}/backup"
                attempt += 1
                try:
                    async with http.post(url, json={"backup_reserve_percent": reserve},
                                         headers={**auth, "Idempotency-Key": key}) as resp:
                        await resp.read()
                        status = resp.status
                except aiohttp.ClientError:
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    acknowledged[key] = (k, site, reserve)
                    break
                if status in {400, 422, 540}:
                    break
                retries += 1
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.3)

    async def fault() -> None:
        try:
            await chaos()
        finally:
            chaos_over.set()

    started = time.monotonic()
    await asyncio.gather(fault(), *(client(k, site, i) for i, (k, site) in enumerate(sites)))
    took = time.monotonic() - started
    # what the edges and the hub journal say
    edge_runs: dict[str, int | None] = {}
    journal_after = []
    for k in range(edges):
        edge_runs.update(await asyncio.to_thread(_edge_rows, tmpdir / f"data-{k}", _UPLINK))
        journal_after.append(await asyncio.to_thread(_edge_rows, tmpdir / f"data-{k}", _JOURNAL))
    conn = await asyncpg.connect(json_dsn(fleet.hub_yaml))
    try:
        pg = {r["command_id"]: r["status"] for r in await conn.fetch(
            "SELECT command_id, status FROM hub_commands WHERE command_id LIKE $1", f"{prefix}-%")}
    finally:
        await conn.close()
    fault_keys = {key for key, _ in sent}
    ran_at_edges = {key for key in edge_runs if key in fault_keys}
    new_journal = sum(len(after) - len(before) for before, after in
                      zip(journal_before, journal_after, strict=True))
    lost = [key for key in acknowledged if edge_runs.get(key) != 200]
    disagree = [key for key, status in pg.items()
                if status is not None and edge_runs.get(key) not in {None, status}]
    edge_status: dict[int | None, int] = {}
    for key in ran_at_edges:
        edge_status[edge_runs[key]] = edge_status.get(edge_runs[key], 0) + 1
    wrong_setting = 0
    last: dict[int, tuple[int, int]] = {}
    for key, (_, site, reserve) in acknowledged.items():
        n = int(key.rsplit("-", 1)[1])
        if site not in last or n > last[site][0]:
            last[site] = (n, reserve)
    for site, (_, reserve) in last.items():
        k = (site - FIRST_SITE_ID) // SITE_STRIDE
        async with http.get(fleet.gws[k].hello["url"] + f"/api/1/energy_sites/{site}/site_info",
                            headers=auth) as resp:
            body = await resp.json()
        wrong_setting += body["response"]["backup_reserve_percent"] != reserve
    print_table(f"{title} during {len(fault_keys)} commands ({took:.0f} s)",
                ["figure", "value"],
                [["commands acknowledged 200", len(acknowledged)],
                 ["client retries (same key)", retries],
                 ["client answers by status", dict(sorted(statuses.items()))],
                 ["acknowledged but not 200 at the edge", len(lost)],
                 ["ids run at the edges (by edge status)",
                  f"{len(ran_at_edges)} {dict(sorted(edge_status.items(), key=str))}"],
                 ["edge journal entries added", new_journal],
                 ["hub journal rows / with a status",
                  f"{len(pg)} / {sum(s is not None for s in pg.values())}"],
                 ["hub vs edge status disagreements", len(disagree)],
                 ["sites whose setting is not the last acknowledged", wrong_setting]])
    await history_check(fleet, title)


_FLOWS = ("solar_to_home", "solar_to_battery", "solar_to_grid", "battery_to_home",
          "battery_to_grid", "grid_to_home", "grid_to_battery")
_BUCKET_S = 300.0
_CLOSED_AFTER_S = 20.0  # the uplink sends a bucket 20 s after its end (docs/hub.md)


def _edge_history(data_dir: Path) -> tuple[dict[int, float], dict[tuple[int, float], tuple[float, ...]],
                                             dict[tuple[int, float], tuple[float, ...]]]:
    import sqlite3

    db = sqlite3.connect(f"file:{data_dir / 'gateway.sqlite3'}?mode=ro", uri=True)
    flows = ", ".join(_FLOWS)
    try:
        cursors = {int(r[0]): float(r[1]) for r in
                   db.execute("SELECT site_id, sent_until FROM uplink_history_sent")}
        five = {(int(r[0]), float(r[1])): tuple(r[2:]) for r in db.execute(
            f"SELECT site_id, start, {flows} FROM energy_5min")}  # noqa: S608 - constants
        hours = {(int(r[0]), float(r[1])): tuple(r[2:]) for r in db.execute(
            f"SELECT site_id, hour, {flows} FROM energy_1h")}  # noqa: S608 - constants
        return cursors, five, hours
    finally:
        db.close()


def _missing_slots(sites: set[int], cursors: dict[int, float],
                   five: dict[tuple[int, float], tuple[float, ...]]) -> list[tuple[int, float]]:
    """5-minute slots up to each site's cursor, since its own first bucket, with no row (an edge
    that started a few seconds later than another has no row for the slot before its start)."""
    firsts: dict[int, float] = {}
    for site, start in five:
        firsts[site] = min(start, firsts.get(site, start))
    missing = []
    for site in sites:
        start = firsts.get(site, math.inf)
        while start + _BUCKET_S <= cursors.get(site, 0.0):
            if (site, start) not in five:
                missing.append((site, start))
            start += _BUCKET_S
    return missing


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y)) for x, y in zip(a, b, strict=True))


async def history_check(fleet: Fleet, title: str, deadline_s: float = 120.0) -> None:
    """Once every edge's cursor reached the last closed bucket: the hub's 5-minute buckets (and
    whole hours) against the edge's own, bucket by bucket, up to each site's cursor."""
    sites = {FIRST_SITE_ID + k * SITE_STRIDE + i for k in range(fleet.edges)
             for i in range(fleet.homes)}
    closed_until = (time.time() - _CLOSED_AFTER_S) // _BUCKET_S * _BUCKET_S
    waited = time.monotonic()
    while True:
        cursors: dict[int, float] = {}
        five: dict[tuple[int, float], tuple[float, ...]] = {}
        hours: dict[tuple[int, float], tuple[float, ...]] = {}
        for k in range(fleet.edges):
            c, f, h = await asyncio.to_thread(_edge_history, fleet.tmpdir / f"data-{k}")
            cursors.update(c)
            five.update(f)
            hours.update(h)
        behind = [s for s in sites if cursors.get(s, 0.0) < closed_until]
        conn = await asyncpg.connect(json_dsn(fleet.hub_yaml))
        try:
            flows = ", ".join(_FLOWS)
            hub5 = {(int(r[0]), float(r[1])): tuple(r[2:]) for r in await conn.fetch(
                f"SELECT site_id, start, {flows} FROM hub_energy_5min")}  # noqa: S608 - constants
            hub1h = {(int(r[0]), float(r[1])): tuple(r[2:]) for r in await conn.fetch(
                f"SELECT site_id, hour, {flows} FROM hub_energy_1h")}  # noqa: S608 - constants
        finally:
            await conn.close()
        expected = {key: v for key, v in five.items() if key[1] + _BUCKET_S <= cursors.get(key[0], 0.0)}
        gaps = [key for key in expected if key not in hub5]
        extra = [key for key in hub5 if key not in five]
        differ = [key for key, v in expected.items() if key in hub5 and not _same(v, hub5[key])]
        # whole hours the cursor passed: the hub's rollup row against the edge's
        whole = {key: v for key, v in hours.items() if key[1] + 3600 <= cursors.get(key[0], 0.0)}
        hour_gaps = [key for key in whole if key not in hub1h]
        hour_differ = [key for key, v in whole.items() if key in hub1h and not _same(v, hub1h[key])]
        # a slot no site-bucket holds at either end: the edge lost it (every home uses energy in
        # every 5 minutes, so each site has a row for every slot since its first one)
        lost_slots = _missing_slots(sites, cursors, five)
        settled = not behind and not gaps and not differ
        if settled or time.monotonic() - waited > deadline_s:
            break
        await asyncio.sleep(2.0)
    starts = sorted({key[1] for key in expected})
    span = (f"{time.strftime('%H:%M', time.gmtime(starts[0]))}-"
            f"{time.strftime('%H:%M', time.gmtime(starts[-1] + _BUCKET_S))} UTC" if starts else "none")
    print_table(f"History after: {title} (waited {time.monotonic() - waited:.0f} s for the cursors)",
                ["figure", "value"],
                [["closed buckets at the edges up to their cursors", f"{len(expected)} ({span})"],
                 ["sites whose cursor is behind the last closed bucket", len(behind)],
                 ["buckets missing at the hub (gap)", len(gaps)],
                 ["buckets at the hub the edge does not have", len(extra)],
                 ["buckets whose energy differs (a doubled batch would)", len(differ)],
                 ["site-slots up to the cursor missing at the edge (so at the hub too)",
                  len(lost_slots)],
                 ["whole hours compared / missing / differing",
                  f"{len(whole)} / {len(hour_gaps)} / {len(hour_differ)}"]])


async def fault_run(http: aiohttp.ClientSession, auth: dict[str, str], fleet: Fleet,
                    cut_s: float) -> None:
    """The four faults of docs/hub.md, one after another, each checked on its own."""

    async def broker_and_replica() -> None:
        await asyncio.sleep(2.0)
        await fleet.mqtt.stop()
        await asyncio.sleep(3.0)
        await fleet.mqtt.start()
        print("fault: broker restarted (down 3 s)")
        await asyncio.sleep(3.0)
        fleet.hubs[0].kill()
        await fleet.hubs[0].wait()
        print("fault: replica 1 killed (SIGKILL)")
        await asyncio.sleep(2.0)
        fleet.hubs[0] = await fleet.stack.enter_async_context(
            replica(fleet.hub_yaml, fleet.ports[0], fleet.tmpdir / "hub-0b.log"))
        print("fault: replica 1 replaced")

    await command_run(http, auth, fleet, title="Faults: broker restart + replica SIGKILL",
                      prefix="fault", chaos=broker_and_replica)

    async def edge_killed() -> None:
        await asyncio.sleep(2.0)
        fleet.gws[0].proc.kill()
        await fleet.gws[0].proc.wait()
        print("fault: edge 0 killed (SIGKILL)")
        await asyncio.sleep(3.0)
        fleet.gws[0] = await start_edge(fleet.stack, 0, fleet.sims[0], tmpdir=fleet.tmpdir,
                                        broker_port=fleet.mqtt.port, poll_s=fleet.poll_s,
                                        log_suffix="-b")
        await fleet.gws[0].ask("wait_online")
        print("fault: edge 0 restarted on its data dir, devices online")

    await command_run(http, auth, fleet, title="Faults: edge 0 SIGKILL + restart",
                      prefix="edgekill", chaos=edge_killed)

    # the cut should span a bucket's close (end + 20 s + the 10 s send loop), so that history
    # piles up at the edge and must be caught up: start it 0-30 s before a bucket boundary
    wait = (_BUCKET_S - 30 - time.time() % _BUCKET_S) % _BUCKET_S
    if cut_s >= 60 and wait > 0:
        print(f"\nwaiting {wait:.0f} s so that the uplink cut spans a bucket's close")
        await asyncio.sleep(wait)
    local: dict[int, int] = {}
    reads: dict[int, int] = {}

    async def uplink_cut() -> None:
        await asyncio.sleep(2.0)
        await fleet.mqtt.stop()
        cut = time.monotonic()
        print(f"fault: broker stopped, uplink cut for {cut_s:g} s")
        # meanwhile the edges keep controlling: local commands and reads on other sites
        n = 0
        while time.monotonic() - cut < cut_s:
            k = n % fleet.edges
            site = FIRST_SITE_ID + k * SITE_STRIDE + 10 + (n // fleet.edges) % max(1, fleet.homes - 10)
            base = fleet.gws[k].hello["url"] + f"/api/1/energy_sites/{site}"
            async with http.post(base + "/backup", json={"backup_reserve_percent": 30 + n % 40},
                                 headers=auth) as resp:
                await resp.read()
                local[resp.status] = local.get(resp.status, 0) + 1
            async with http.get(base + "/live_status", headers=auth) as resp:
                await resp.read()
                reads[resp.status] = reads.get(resp.status, 0) + 1
            n += 1
            await asyncio.sleep(0.5)
        await fleet.mqtt.start()
        print(f"fault: broker back after {time.monotonic() - cut:.0f} s")

    await command_run(http, auth, fleet, title=f"Faults: uplink cut {cut_s:g} s (broker down)",
                      prefix="cut", chaos=uplink_cut, client_deadline_s=cut_s + 90)
    print(f"\nduring the cut, direct to the edges: commands by status {local}, "
          f"live_status by status {reads}")


_JOURNAL = "SELECT id, 0 FROM command_journal"
_UPLINK = "SELECT command_id, status FROM uplink_commands"


def _edge_rows(data_dir: Path, query: str) -> dict[str, int | None]:
    import sqlite3

    db = sqlite3.connect(f"file:{data_dir / 'gateway.sqlite3'}?mode=ro", uri=True)
    try:
        return {str(row[0]): row[1] for row in db.execute(query)}
    finally:
        db.close()


def json_dsn(hub_yaml: Path) -> str:
    dsn: str = orjson.loads(hub_yaml.read_bytes())["hub"]["postgres_dsn"]
    return dsn


async def run(edges: int, homes: int, poll_s: float, samples: int, window_s: float, *,
              faults: bool = False, cut_s: float = 60.0, broker_nodelay: bool = True) -> None:
    total = edges * homes
    print(f"# Hub bench: {edges} edges x {homes} homes = {total} homes, poll {poll_s:g} s, "
          f"mosquitto set_tcp_nodelay {str(broker_nodelay).lower()}; {machine()}")
    token = bench_token()
    auth = {"Authorization": f"Bearer {token}"}
    prefix = f"egw-hub-bench-{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(os.environ.get("BENCH_KEEP_DIR", tmp))
        async with contextlib.AsyncExitStack() as stack:
            mqtt = await stack.enter_async_context(broker(tmpdir, nodelay=broker_nodelay))
            broker_port = mqtt.port
            dsn = await stack.enter_async_context(database())
            hub_yaml = tmpdir / "hub.yaml"
            hub_yaml.write_bytes(orjson.dumps({"hub": {
                "jwt_secret": SECRET, "postgres_dsn": dsn, "redis_url": REDIS, "redis_prefix": prefix,
                "rate_limits": {"default_plan": "bench", "plans": {
                    "bench": {"per_minute": 10**12, "per_day": 10**12}}},
                "mqtt": {"host": "127.0.0.1", "port": broker_port}, "command_timeout_s": 10}}))
            ports = [free_port(), free_port()]
            hubs = [await stack.enter_async_context(replica(hub_yaml, p, tmpdir / f"hub-{i}.log"))
                    for i, p in enumerate(ports)]
            sims, gws = [], []
            started = time.monotonic()
            for k in range(edges):
                sim = await stack.enter_async_context(helper(
                    "bench._simproc", "--homes", str(homes), "--tick-s", str(max(1.0, poll_s / 2)),
                    "--image-cache-s", "0.5", log_path=tmpdir / f"sim-{k}.log"))
                gw = await start_edge(stack, k, sim, tmpdir=tmpdir, broker_port=broker_port,
                                      poll_s=poll_s)
                sims.append(sim)
                gws.append(gw)
            for gw in gws:
                await gw.ask("wait_online")
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
                hub_urls = [f"http://127.0.0.1:{p}" for p in ports]

                async def live_count() -> int:
                    async with http.get(f"{hub_urls[0]}/api/1/products", headers=auth) as resp:
                        body = await resp.json()
                    return sum(1 for e in body["response"] if e.get("battery_power") is not None)

                while (n := await live_count()) < total:
                    if time.monotonic() - started > 900:
                        raise RuntimeError(f"only {n} of {total} sites live at the hub")
                    await asyncio.sleep(1.0)
                print(f"\nall {total} sites live at the hub {time.monotonic() - started:.0f} s after start")

                # 1. verified command latency, hub vs edge, alternating, sites spread over edges
                sites = [(k, FIRST_SITE_ID + k * SITE_STRIDE + i)
                         for i in range(min(samples, homes)) for k in range(edges)][:samples * 2]
                direct, via_hub, failures = [], [], 0
                reserve = itertools.cycle(range(20, 60))
                for n, (k, site) in enumerate(sites):
                    path = f"/api/1/energy_sites/{site}/backup"
                    status, took = await post(http, gws[k].hello["url"] + path,
                                              {"backup_reserve_percent": next(reserve)}, auth)
                    direct.append(took)
                    failures += status != 200
                    status, took = await post(http, hub_urls[n % 2] + path,
                                              {"backup_reserve_percent": next(reserve)},
                                              {**auth, "Idempotency-Key": f"bench-{n}"})
                    via_hub.append(took)
                    failures += status != 200
                rows = [["edge (direct)", len(direct), percentile(direct, 50) * 1e3,
                         percentile(direct, 99) * 1e3, 1.0, 1.0],
                        ["hub", len(via_hub), percentile(via_hub, 50) * 1e3,
                         percentile(via_hub, 99) * 1e3,
                         percentile(via_hub, 50) / percentile(direct, 50),
                         percentile(via_hub, 99) / percentile(direct, 99)]]
                print_table(f"Verified command latency ({failures} non-200)",
                            ["path", "n", "p50 ms", "p99 ms", "p50 ratio", "p99 ratio"], rows)

                # 2. live_status throughput: one replica vs one edge
                path = f"/api/1/energy_sites/{FIRST_SITE_ID}/live_status"
                edge_port = int(gws[0].hello["url"].rsplit(":", 1)[1])
                edge_rps = await loadgen(edge_port, path, token, 8.0)
                hub_rps = await loadgen(ports[0], path, token, 8.0)
                print_table("live_status throughput (16 keep-alive connections, 8 s)",
                            ["server", "req/s", "ratio"],
                            [["edge", edge_rps, 1.0], ["hub replica", hub_rps, hub_rps / edge_rps]])

                # 3. device change -> visible at the edge / at the hub
                control = [s.hello["control_url"] for s in sims]
                to_edge, to_hub = [], []
                for n in range(min(samples, homes * edges)):
                    k, i = n % edges, n // edges
                    site = FIRST_SITE_ID + k * SITE_STRIDE + i
                    lp = f"/api/1/energy_sites/{site}/live_status"
                    changed = time.perf_counter()
                    async with http.post(f"{control[k]}/homes/home-{i}/grid", json={"up": False}):
                        pass
                    seen: dict[str, float] = {}
                    while len(seen) < 2 and time.perf_counter() - changed < 30:
                        for name, url in (("edge", gws[k].hello["url"] + lp), ("hub", hub_urls[0] + lp)):
                            if name in seen:
                                continue
                            async with http.get(url, headers=auth) as resp:
                                body = await resp.json()
                            if resp.status == 200 and body["response"]["grid_status"] == "Inactive":
                                seen[name] = time.perf_counter() - changed
                        await asyncio.sleep(0.01)
                    to_edge.append(seen.get("edge", float("nan")))
                    to_hub.append(seen.get("hub", float("nan")))
                    async with http.post(f"{control[k]}/homes/home-{i}/grid", json={"up": True}):
                        pass
                print_table("Device change (grid down) until live_status shows it",
                            ["seen at", "n", "p50 s", "p99 s"],
                            [["edge", len(to_edge), percentile(to_edge, 50), percentile(to_edge, 99)],
                             ["hub", len(to_hub), percentile(to_hub, 50), percentile(to_hub, 99)]])

                # 4. CPU and memory over a quiet window (live publishing only)
                procs = {"hub replica 1": psutil.Process(hubs[0].pid),
                         "hub replica 2": psutil.Process(hubs[1].pid),
                         "broker": psutil.Process(mqtt.proc.pid if mqtt.proc else 0)}
                for k, gw in enumerate(gws):
                    procs[f"edge {k}"] = psutil.Process(gw.pid)
                before = {n: p.cpu_times() for n, p in procs.items()}
                await asyncio.sleep(window_s)
                rows = []
                per_k = 1000 / total
                for name, proc in procs.items():
                    t0, t1 = before[name], proc.cpu_times()
                    cores = ((t1.user - t0.user) + (t1.system - t0.system)) / window_s
                    rss = proc.memory_info().rss / 2**20
                    homes_here = homes if name.startswith("edge") else total
                    rows.append([name, homes_here, cores, cores * 1000 / homes_here, rss,
                                 rss * (1000 / homes_here if name.startswith("edge") else per_k)])
                print_table(f"CPU and memory over {window_s:g} s (no client load)",
                            ["process", "homes", "cores", "cores / 1k homes", "RSS MB", "MB / 1k homes"],
                            rows)
                async with http.get(f"{hub_urls[0]}/health") as resp:
                    counters = (await resp.json())["response"]["counters"]
                print(f"\nreplica 1 counters: {counters}")
                if faults:
                    await fault_run(http, auth, Fleet(
                        stack=stack, mqtt=mqtt, hub_yaml=hub_yaml, ports=ports, hubs=hubs, sims=sims,
                        gws=gws, tmpdir=tmpdir, edges=edges, homes=homes, poll_s=poll_s), cut_s)
        client = aioredis.Redis.from_url(REDIS)
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edges", type=int, default=4)
    parser.add_argument("--homes", type=int, default=250, help="simulated homes per edge")
    parser.add_argument("--poll-s", type=float, default=2.0)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--window-s", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="2 edges x 25 homes, fewer samples")
    parser.add_argument("--faults", action="store_true",
                        help="then the fault runs: broker restart + replica killed, edge killed "
                             "and restarted, uplink cut (each checked for lost/doubled commands "
                             "and history gaps)")
    parser.add_argument("--cut-s", type=float, default=60.0, help="uplink cut length (real seconds)")
    parser.add_argument("--broker-nagle", action="store_true",
                        help="leave Mosquitto's set_tcp_nodelay at its default (false)")
    args = parser.parse_args()
    raise_fd_limit()
    quiet_logging()
    if args.quick:
        args.edges, args.homes, args.samples, args.window_s = 2, 25, 20, 5.0
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(args.edges, args.homes, args.poll_s, args.samples, args.window_s,
                    faults=args.faults, cut_s=args.cut_s, broker_nodelay=not args.broker_nagle))


if __name__ == "__main__":
    main()
