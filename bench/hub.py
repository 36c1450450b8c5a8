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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
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

    def __init__(self, tmpdir: Path) -> None:
        self.port = free_port()
        self.tmpdir = tmpdir
        self.conf = tmpdir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "max_queued_messages 100000\n")
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
async def broker(tmpdir: Path) -> AsyncIterator[Broker]:
    running = Broker(tmpdir)
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


async def fault_run(http: aiohttp.ClientSession, auth: dict[str, str], *,
                    stack: contextlib.AsyncExitStack, mqtt: Broker, hub_yaml: Path,
                    ports: list[int], hubs: list[asyncio.subprocess.Process], gws: list[Any],
                    tmpdir: Path, edges: int, homes: int) -> None:
    """Commands through the hub while the broker restarts and a replica is killed (SIGKILL) and
    replaced; clients retry with their Idempotency-Key. Then: every acknowledged command is the
    edge's setting, none ran twice, PostgreSQL's journal agrees with the edges'."""
    hub_urls = [f"http://127.0.0.1:{p}" for p in ports]
    journal_before = [await asyncio.to_thread(_edge_rows, tmpdir / f"data-{k}", _JOURNAL)
                      for k in range(edges)]
    sites = [(k, FIRST_SITE_ID + k * SITE_STRIDE + i) for k in range(edges) for i in range(min(homes, 10))]
    acknowledged: dict[str, tuple[int, int, int]] = {}  # key -> (edge, site, reserve)
    retries = 0
    sent: list[tuple[str, int]] = []

    async def client(k: int, site: int, offset: int) -> None:
        nonlocal retries
        for n in range(6):
            key = f"fault-{site}-{n}"
            reserve = 20 + (offset * 7 + n * 5) % 60
            sent.append((key, k))
            deadline = time.monotonic() + 90
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
                if status == 200:
                    acknowledged[key] = (k, site, reserve)
                    break
                if status in {400, 422, 540}:
                    break
                retries += 1
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.3)

    async def chaos() -> None:
        await asyncio.sleep(2.0)
        await mqtt.stop()
        await asyncio.sleep(3.0)
        await mqtt.start()
        print("fault: broker restarted (down 3 s)")
        await asyncio.sleep(3.0)
        hubs[0].kill()
        await hubs[0].wait()
        print("fault: replica 1 killed (SIGKILL)")
        await asyncio.sleep(2.0)
        hubs[0] = await stack.enter_async_context(replica(hub_yaml, ports[0], tmpdir / "hub-0b.log"))
        print("fault: replica 1 replaced")

    started = time.monotonic()
    await asyncio.gather(chaos(), *(client(k, site, i) for i, (k, site) in enumerate(sites)))
    took = time.monotonic() - started
    # what the edges and the hub journal say
    edge_runs: dict[str, int | None] = {}
    journal_after = []
    for k in range(edges):
        edge_runs.update(await asyncio.to_thread(_edge_rows, tmpdir / f"data-{k}", _UPLINK))
        journal_after.append(await asyncio.to_thread(_edge_rows, tmpdir / f"data-{k}", _JOURNAL))
    conn = await asyncpg.connect(json_dsn(hub_yaml))
    try:
        pg = {r["command_id"]: r["status"] for r in await conn.fetch(
            "SELECT command_id, status FROM hub_commands WHERE command_id LIKE 'fault-%'")}
    finally:
        await conn.close()
    fault_keys = {key for key, _ in sent}
    ran_at_edges = {key for key in edge_runs if key in fault_keys}
    new_journal = sum(len(after) - len(before) for before, after in
                      zip(journal_before, journal_after, strict=True))
    lost = [key for key in acknowledged if edge_runs.get(key) != 200]
    disagree = [key for key, status in pg.items()
                if status is not None and edge_runs.get(key) not in {None, status}]
    wrong_setting = 0
    last: dict[int, tuple[int, int]] = {}
    for key, (_, site, reserve) in acknowledged.items():
        n = int(key.rsplit("-", 1)[1])
        if site not in last or n > last[site][0]:
            last[site] = (n, reserve)
    for site, (_, reserve) in last.items():
        k = (site - FIRST_SITE_ID) // SITE_STRIDE
        async with http.get(gws[k].hello["url"] + f"/api/1/energy_sites/{site}/site_info",
                            headers=auth) as resp:
            body = await resp.json()
        wrong_setting += body["response"]["backup_reserve_percent"] != reserve
    print_table(f"Faults: broker restart + replica SIGKILL during {len(fault_keys)} commands "
                f"({took:.0f} s)",
                ["figure", "value"],
                [["commands acknowledged 200", len(acknowledged)],
                 ["client retries (same key)", retries],
                 ["acknowledged but not 200 at the edge", len(lost)],
                 ["ids run at the edges", len(ran_at_edges)],
                 ["edge journal entries added", new_journal],
                 ["hub journal rows / with a status",
                  f"{len(pg)} / {sum(s is not None for s in pg.values())}"],
                 ["hub vs edge status disagreements", len(disagree)],
                 ["sites whose setting is not the last acknowledged", wrong_setting]])


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
              faults: bool = False) -> None:
    total = edges * homes
    print(f"# Hub bench: {edges} edges x {homes} homes = {total} homes, poll {poll_s:g} s; "
          f"{machine()}")
    token = bench_token()
    auth = {"Authorization": f"Bearer {token}"}
    prefix = f"egw-hub-bench-{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(os.environ.get("BENCH_KEEP_DIR", tmp))
        async with contextlib.AsyncExitStack() as stack:
            mqtt = await stack.enter_async_context(broker(tmpdir))
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
                eps = tmpdir / f"endpoints-{k}.json"
                eps.write_bytes(orjson.dumps(sim.hello["endpoints"]))
                gw = await stack.enter_async_context(helper(
                    "bench._gwproc", "--endpoints", str(eps), "--data-dir", str(tmpdir / f"data-{k}"),
                    "--poll-s", str(poll_s), "--first-site", str(FIRST_SITE_ID + k * SITE_STRIDE),
                    "--uplink", f"127.0.0.1:{broker_port}", "--gateway-id", f"edge-{k}",
                    "--timeout-s", str(max(1.0, poll_s)),
                    "--log-level", os.environ.get("BENCH_GW_LOG", "WARNING"),
                    log_path=tmpdir / f"gw-{k}.log"))
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
                         for i in range(samples) for k in range(edges)][:samples * 2]
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
                    await fault_run(http, auth, stack=stack, mqtt=mqtt, hub_yaml=hub_yaml,
                                    ports=ports, hubs=hubs, gws=gws, tmpdir=tmpdir, edges=edges,
                                    homes=homes)
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
                        help="then: commands while the broker restarts and a replica is killed")
    args = parser.parse_args()
    raise_fd_limit()
    quiet_logging()
    if args.quick:
        args.edges, args.homes, args.samples, args.window_s = 2, 25, 20, 5.0
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(args.edges, args.homes, args.poll_s, args.samples, args.window_s,
                    faults=args.faults))


if __name__ == "__main__":
    main()
