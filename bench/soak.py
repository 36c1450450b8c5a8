"""Soak: concurrent API clients send random valid and invalid commands while faults are injected
at random; at the end nothing acknowledged is lost, nothing answered 500, memory stays flat.

Run: ``.venv/bin/python -m bench.soak [--duration-s 300] [--clients 8] [--seed 1]``.
The engine (``run_soak``) is shared with the short ``soak``-marked pytest run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.core.config import Config, DeviceConfig, GatewaySection, Plan, RateLimits, SiteConfig
from gateway.runtime.site import Site
from gateway.web.app import create_app
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE, issue_token
from gateway.web.keys import SITES
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig
from simulator.home import SimHome

SITE_ID = 1001
_SECRET = "soak-secret-0123456789-0123456789-abcdef"  # noqa: S105 - a throwaway key
_RESERVE, _MODE, _RULE, _STORM = "backup", "operation", "grid_import_export", "storm_mode"


@dataclass
class SoakReport:
    """What a soak run did and found."""

    duration_s: float
    requests: int = 0
    commands: int = 0
    acknowledged: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status other than the documented device ones (503/504/540)."""
        return sum(n for s, n in self.statuses.items() if s >= 500 and s not in (503, 504, 540))

    @property
    def rss_growth_mb(self) -> float:
        """RSS at the end minus RSS after the first third (warm-up excluded)."""
        if len(self.rss_mb) < 3:
            return 0.0
        return self.rss_mb[-1] - self.rss_mb[len(self.rss_mb) // 3]

    def lines(self) -> list[str]:
        """A human summary."""
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        faults = ", ".join(f"{k}: {n}" for k, n in sorted(self.faults.items()))
        return [
            f"duration {self.duration_s:.0f} s, {self.requests} requests, {self.commands} commands,"
            f" {self.acknowledged} acknowledged (200)",
            f"statuses: {statuses}",
            f"faults injected ({sum(self.faults.values())}): {faults}",
            f"lost acknowledged settings: {len(self.lost)} {self.lost}",
            f"unexpected 5xx: {self.server_errors}",
            f"RSS growth after warm-up: {self.rss_growth_mb:+.1f} MB "
            f"({self.rss_mb[0] if self.rss_mb else 0:.0f} -> "
            f"{self.rss_mb[-1] if self.rss_mb else 0:.0f} MB)",
        ]


def _rss_mb() -> float:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _random_command(rng: random.Random) -> tuple[str, Any, bool]:
    """(endpoint, body, valid)."""
    roll = rng.random()
    if roll < 0.35:
        return _RESERVE, {"backup_reserve_percent": rng.randint(0, 100)}, True
    if roll < 0.5:
        return _MODE, {"default_real_mode": rng.choice(["self_consumption", "backup"])}, True
    if roll < 0.65:
        rule = rng.choice(["never", "pv_only", "battery_ok"])
        return _RULE, {"customer_preferred_export_rule": rule}, True
    if roll < 0.72:
        return _STORM, {"enabled": rng.random() < 0.5}, True
    bad = rng.choice([
        (_RESERVE, {"backup_reserve_percent": 101}), (_RESERVE, {"backup_reserve_percent": "x"}),
        (_MODE, {"default_real_mode": "turbo"}), (_RULE, {"customer_preferred_export_rule": 1}),
        (_RESERVE, {}), (_STORM, {"enabled": "yes"}),
    ])
    return bad[0], bad[1], False


async def _client(http: aiohttp.ClientSession, base: str, token: str, *, seed: int,
                  deadline: float, report: SoakReport) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < deadline:
        if rng.random() < 0.3:
            resource = rng.choice(["live_status", "site_info", "calendar_history?kind=energy"])
            async with http.get(f"{base}/api/1/energy_sites/{SITE_ID}/{resource}",
                                headers=headers) as resp:
                await resp.read()
                report.requests += 1
                report.statuses[resp.status] += 1
            continue
        endpoint, body, _valid = _random_command(rng)
        async with http.post(f"{base}/api/1/energy_sites/{SITE_ID}/{endpoint}", json=body,
                             headers=headers) as resp:
            await resp.read()
            report.requests += 1
            report.commands += 1
            report.statuses[resp.status] += 1
            if resp.status == 200:
                report.acknowledged += 1


async def _injector(home: SimHome, rng: random.Random, deadline: float, report: SoakReport) -> None:
    device = home.device("inverter")
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.3, 1.2))
        fault = rng.choice(["ignore_writes", "delay", "drop", "reboot", "half_open", "exception"])
        report.faults[fault] += 1
        if fault == "drop":
            await device.drop_connections()
        elif fault == "reboot":
            await device.reboot(wait=False)
        else:
            faults: dict[str, dict[str, Any]] = {
                "ignore_writes": {"ignore_writes": True}, "delay": {"delay_s": 0.3},
                "half_open": {"half_open": True}, "exception": {"exception_code": 4},
            }
            changes = faults[fault]
            await device.apply_faults(**changes)
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            await device.apply_faults(ignore_writes=False, delay_s=0.0, half_open=False,
                                      exception_code=None)


async def _expected(site: Site) -> dict[str, Any]:
    """The settings the accepted commands asked for, folded in journal order (only validated
    commands are journaled, in the order the site lock applied them; a command the device
    rejected changed nothing and is skipped)."""
    entries = await site._store.commands(site.id, limit=100_000)
    settings: dict[str, Any] = {}
    for entry in reversed(entries):  # oldest first
        if entry["status"] != "rejected":
            settings.update(entry["changes"])
    return settings


async def run_soak(sim: Simulator, site: Site, base_url: str, *, token: str, duration_s: float,
                   clients: int, seed: int) -> SoakReport:
    """Drive the running gateway at ``base_url`` for ``duration_s`` and audit the end state."""
    report = SoakReport(duration_s=duration_s)
    home = sim.homes["home-1001"]
    rng = random.Random(seed)
    deadline = time.monotonic() + duration_s

    async def sample_rss() -> None:
        while time.monotonic() < deadline:
            report.rss_mb.append(await asyncio.to_thread(_rss_mb))
            await asyncio.sleep(max(0.5, duration_s / 30))

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(
            *(_client(http, base_url, token, seed=seed * 100 + i, deadline=deadline, report=report)
              for i in range(clients)),
            _injector(home, rng, deadline, report),
            sample_rss(),
        )
    report.rss_mb.append(await asyncio.to_thread(_rss_mb))
    # Faults are over: every accepted setting must reach the device (408/504 ones included,
    # they are kept and re-applied), and in particular nothing that was acknowledged is lost.
    await home.device("inverter").apply_faults(ignore_writes=False, delay_s=0.0,
                                               half_open=False, exception_code=None)
    report.lost = await _audit(site, home)
    return report


async def _audit(site: Site, home: SimHome, timeout_s: float = 45.0) -> list[str]:
    last = await _expected(site)
    mode = last.get("operation_mode", "self_consumption")
    reserve = last.get("backup_reserve_pct", 20)
    rule = last.get("export_rule", "pv_only")
    want_reserve = 100 if mode == "backup" else reserve
    want_export = 0 if rule == "never" else None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        truth = home.truth()
        if truth.reserve_pct == want_reserve and truth.export_limit_w == want_export:
            return []
        await asyncio.sleep(0.1)
    truth = home.truth()
    lost = []
    if truth.reserve_pct != want_reserve:
        lost.append(f"reserve: device {truth.reserve_pct}, expected {want_reserve}")
    if truth.export_limit_w != want_export:
        lost.append(f"export limit: device {truth.export_limit_w}, expected {want_export}")
    return lost


def soak_config(sim: Simulator, data_dir: Path) -> Config:
    """A gateway config for the soak: one SunSpec site, fast polls, no rate limit."""
    ep = sim.endpoint("home-1001/inverter")
    device = DeviceConfig.model_validate({
        "name": "inverter", "type": "sunspec", "poll_interval_s": 0.2, "stale_after_s": 2.0,
        "options": {"host": ep.host, "port": ep.port, "unit_id": ep.unit_id, "timeout_s": 0.5,
                    "confirm_timeout_s": 1.0}})
    return Config(
        gateway=GatewaySection(port=0, data_dir=data_dir, jwt_secret=_SECRET,
                               command_timeout_s=2.0, reconcile_interval_s=1.0,
                               rate_limits=RateLimits(plans={"standard": Plan(
                                   per_minute=10_000_000, per_day=100_000_000)})),
        sites=[SiteConfig(energy_site_id=SITE_ID, name="Soak", time_zone="Europe/Berlin",
                          devices=[device])],
    )


def sim_config() -> SimulatorConfig:
    """One home with a SunSpec hybrid inverter on a free port."""
    return SimulatorConfig(control=ControlConfig(port=0), tick_s=0.05, homes=[HomeConfig(
        id="home-1001", devices=[SimDeviceConfig(id="inverter", kind="sunspec", port=0)])])


async def _main(duration_s: float, clients: int, seed: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        async with Simulator(sim_config()) as sim:
            app = create_app(soak_config(sim, Path(tmp)))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            tcp = web.TCPSite(runner, "127.0.0.1", 0)
            await tcp.start()
            try:
                host, port = runner.addresses[0][:2]
                site = app[SITES][SITE_ID]
                while site.offline():  # noqa: ASYNC110 - readiness poll
                    await asyncio.sleep(0.05)
                token = issue_token(_SECRET, sub="soak", scopes=[READ_SCOPE, COMMAND_SCOPE],
                                    sites=None, ttl_s=86_400, now_s=time.time())
                report = await run_soak(sim, site, f"http://{host}:{port}", token=token,
                                        duration_s=duration_s, clients=clients, seed=seed)
            finally:
                with contextlib.suppress(Exception):
                    await runner.cleanup()
    for line in report.lines():
        print(line)
    return 1 if report.lost or report.server_errors else 0


def main() -> None:
    """CLI entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=300.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(_main(args.duration_s, args.clients, args.seed)))


if __name__ == "__main__":
    main()
