"""energy-gateway command line: demo, serve, simulate, scan, init, token, check-config."""

# Each command imports what it needs when it runs: `--help` loads argparse and little else, `serve`
# never loads the simulator, and this is the only gateway module that may import `simulator`.

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import asyncio

    from aiohttp import web

    from gateway.core.config import Config, ConfigError, Listener, LoadedConfig, Problem, Purpose
    from gateway.core.config.hub import HubConfig
    from gateway.hub.db import HubStore
    from gateway.runtime import preflight
    from gateway.runtime.clock import Timebase
    from simulator.config import SimulatorConfig

DEFAULT_CONFIG = "config.example.yaml"
DEMO_TTL = "30d"
# gateway.runtime.storage.tokens.REFRESH_S, for the help text: importing the registry (sqlite3, asyncio,
# structlog) would triple the time `--help` takes (tests/unit/test_cli.py checks they agree)
REVOKED_WITHIN_S = 2.0
_T = TypeVar("_T")


class UsageError(Exception):
    """A command-line value that cannot work; the message says which option and why."""


def _find_default_config() -> Path:
    here = Path(DEFAULT_CONFIG)
    if here.exists():
        return here
    # an editable install run from elsewhere: the example next to the package
    bundled = Path(__file__).resolve().parents[1] / DEFAULT_CONFIG
    return bundled if bundled.exists() else here


def _config_error(problems: Sequence[str], path: Path) -> ConfigError:
    from gateway.core.config import ConfigError

    return ConfigError(problems, str(path))


def _read(path: Path) -> LoadedConfig:
    from gateway.core.config import read_config

    return read_config(path)


def _simulator(loaded: LoadedConfig) -> SimulatorConfig | None:
    """The file's ``simulator:`` section, validated by the simulator's own models (None if absent)."""
    from simulator.config import SimulatorConfig

    return loaded.section("simulator", SimulatorConfig)


def _simulator_listeners(sim: SimulatorConfig) -> list[Listener]:
    """What the simulator listens on (a broker client such as an MQTT battery listens on nothing)."""
    from gateway.core.config import Listener

    out = [Listener(("simulator", "control", "port"), sim.control.host, sim.control.port)] \
        if sim.control.port else []
    for h, home in enumerate(sim.homes):
        for d, dev in enumerate(home.devices):
            key = ("simulator", "homes", h, "devices", d)
            if dev.kind in ("mqtt_battery", "ocpp_charger"):  # clients: they dial out
                continue
            if dev.port:
                out.append(Listener((*key, "port"), dev.host, dev.port))
            if dev.kind == "victron_gx" and dev.modbus_port:
                out.append(Listener((*key, "modbus_port"), dev.host, dev.modbus_port))
    return out


def _simulated_problems(config: Config, sim: SimulatorConfig | None) -> list[Problem]:
    """Devices whose ``simulated:`` names no device of the simulator section."""
    from gateway.core.config import Problem

    refs = {f"{home.id}/{dev.id}" for home in (sim.homes if sim else []) for dev in home.devices}
    return [Problem(("sites", s, "devices", d, "simulated"),
                    f"simulated device {dev.simulated!r} is not defined under simulator.homes")
            for s, site in enumerate(config.sites) for d, dev in enumerate(site.devices)
            if dev.simulated is not None and dev.simulated not in refs]


def _deprecation_lines(loaded: LoadedConfig) -> list[str]:
    """The deprecated keys of a file, one warning line each, after a line saying why."""
    from gateway.core.config import FLAT_FORM

    if not loaded.deprecations:
        return []
    return [f"{loaded.source}: warning: {line}"
            for line in (FLAT_FORM, *map(str, loaded.deprecations))]


def _log_deprecations(loaded: LoadedConfig) -> None:
    """Log each deprecated key once logging is configured (serve, demo, simulate)."""
    import structlog

    from gateway.core.config import FLAT_FORM

    log = structlog.get_logger("gateway.config")
    for dep in loaded.deprecations:
        log.warning("config.deprecated_key", file=loaded.source, line=dep.line, key=dep.key,
                    moved_to=dep.moved_to, note=dep.note or None, why=FLAT_FORM)


def _refuse(loaded: LoadedConfig, problems: Sequence[Problem]) -> None:
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise _config_error(loaded.locate(errors), Path(loaded.source))


def _deployment(loaded: LoadedConfig, purpose: Purpose,
                sim: SimulatorConfig | None = None) -> list[Problem]:
    from gateway.core.config import JWT_SECRET_ENV, deployment_problems
    from gateway.core.config.northbound import login_problems

    others = _simulator_listeners(sim) if sim is not None else []
    return deployment_problems(loaded.config, purpose=purpose, others=others,
                               env_secret=os.environ.get(JWT_SECRET_ENV)) \
        + login_problems(loaded.config, lambda p: os.access(p, os.R_OK))


def _preflight(path: Path, listens: list[preflight.Listen], data_dir: Path | None) -> None:
    from gateway.runtime import preflight

    try:
        preflight.check(listens, data_dir)
    except preflight.StartupError as exc:
        raise _config_error(exc.problems, path) from None


def _simulator_listens(sim: SimulatorConfig) -> list[preflight.Listen]:
    """The simulator's sockets for the start-up check (ephemeral ports are never busy)."""
    from gateway.core.config import key_path
    from gateway.runtime import preflight

    return [preflight.Listen(key_path((*listener.key[:-1], "host")), listener.host,
                             key_path(listener.key), listener.port)
            for listener in _simulator_listeners(sim)]


def _stop_event() -> asyncio.Event:
    """An event SIGINT and SIGTERM set, from now on (called in the loop before any banner).

    Installed before the banner says the process is up: whoever reads the banner may stop it at
    once, and that stop is then as clean as any later one.
    """
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _start_gateway(config: Config, path: Path, jwt_secret: str | None = None,
                         timebase: Timebase | None = None) -> web.AppRunner:
    import sqlite3

    from aiohttp import web

    from gateway.runtime.clock import ClockSourceError
    from gateway.runtime.storage import StorageError
    from gateway.web.app import create_app
    from gateway.web.server import GatewayRunner

    runner = GatewayRunner(create_app(config, jwt_secret=jwt_secret, timebase=timebase),
                           access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.gateway.host, config.gateway.port)
        await site.start()
    except (OSError, sqlite3.Error, StorageError, ClockSourceError) as exc:
        # the preflight checks passed a moment ago: something took the port or the disk since,
        # or the storage is newer than this gateway
        await runner.cleanup()
        raise _config_error([f"cannot start the gateway: {exc}"], path) from None
    return runner


@dataclass(frozen=True)
class DeviceLine:
    """A device as the demo banner shows it."""

    name: str
    type: str
    state: str  # "online" or "offline (why)"


@dataclass(frozen=True)
class SiteLine:
    """A site as the demo banner shows it."""

    energy_site_id: int
    name: str
    devices: tuple[DeviceLine, ...]
    summary: str  # e.g. "solar 3.2 kW, battery 55 %", or "" while offline


def demo_banner(*, url: str, control_url: str, sites: Sequence[SiteLine], token: str,
                per_run_secret: bool, charger_path: str | None = None,
                northbound: str | None = None) -> str:
    """What a newcomer sees once the demo is up: where things are, their state, what to try."""
    width = max(len(s.name) for s in sites)
    lines = [
        "energy-gateway demo: simulated homes behind a local gateway, all on this machine",
        "",
        f"  gateway    {url}",
        f"  status     {url}/ui  (in a browser; paste the token below)",
        f"  simulator  {control_url}  (control API: the homes' truth, faults, grid outages)",
    ]
    if northbound:
        lines.append(f"  home assistant  {northbound}")
    lines += [""]
    for site in sites:
        devices = ", ".join(f"{d.name} ({d.type}) {d.state}" for d in site.devices)
        summary = f"  [{site.summary}]" if site.summary else ""
        lines.append(f"  site {site.energy_site_id}  {site.name:<{width}}  {devices}{summary}")
    validity = ("signed with a per-run secret: valid until this demo stops" if per_run_secret
                else f"valid {DEMO_TTL}")
    first = sites[0].energy_site_id
    lines += [
        "",
        f"  token (read, commands and storm_admin, all sites; {validity}):",
        f"  export TOKEN={token}",
        "",
        "  try:",
        f'    curl -s -H "Authorization: Bearer $TOKEN" {url}/api/1/energy_sites/{first}/live_status',
        f'    curl -s -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" '
        f"-d '{{\"backup_reserve_percent\": 40}}' {url}/api/1/energy_sites/{first}/backup",
        f"    curl -s {control_url}/homes  (what the simulator plays)",
        f"    curl -s -d '{{\"speed\": 600}}' {control_url}/clock  (homes and gateway 600x faster)",
        *([f"    curl -s -X POST -d '{{\"plugged\": true}}' {control_url}{charger_path}/plug"
           "  (plug a car into the simulated charger; docs/chargers.md)"] if charger_path else []),
        "",
        "  More log detail: energy-gateway --log-level info demo.  Ctrl-C stops the demo.",
    ]
    return "\n".join(lines)


def site_lines(app: web.Application) -> list[SiteLine]:
    """The sites of a running app as the demo banner shows them (offline devices included)."""
    from gateway.core.errors import SiteOffline
    from gateway.web.keys import SITES

    out = []
    now = time.monotonic()
    for site in app[SITES].values():
        offline = set(map(id, site.offline(now)))
        devices = tuple(
            DeviceLine(d.name, d.config.type,
                       f"offline ({d.last_error or 'no data yet'})" if id(d) in offline else "online")
            for d in site.devices) + tuple(
            DeviceLine(c.id, "ocpp charger", "connected" if c.connected else "not connected yet")
            for c in site.chargers)
        summary = ""
        with contextlib.suppress(SiteOffline):
            reading = site.reading()
            parts = [f"solar {reading.solar_w / 1000:.1f} kW"]
            if reading.soc_pct is not None:
                parts.append(f"battery {reading.soc_pct:.0f} %")
            parts.append(f"grid {reading.grid_w / 1000:+.1f} kW")
            summary = ", ".join(parts)
        out.append(SiteLine(site.id, site.config.name, devices, summary))
    return out


async def _demo(config: Config, sim_config: SimulatorConfig, path: Path, *, secret: str,
                per_run_secret: bool, token: str) -> None:
    import asyncio

    from gateway.core.config.storm import demo_storm_feed
    from gateway.runtime.clock import InProcessClock
    from gateway.web.keys import SITES
    from simulator import Simulator

    stop = _stop_event()
    async with contextlib.AsyncExitStack() as stack:
        try:
            sim = await stack.enter_async_context(Simulator(sim_config))
        except OSError as exc:  # a port taken since the preflight check
            raise _config_error([f"cannot start the simulator: {exc}"], path) from None
        # sites without alert sources of their own follow the simulator's feed (docs/simulator.md)
        config = demo_storm_feed(config, {h.id: (h.latitude, h.longitude) for h in sim_config.homes},
                                 sim.control_url)
        # The demo follows its simulator's clock, read in process: the homes' exact time and
        # speed (a POST /clock is seen at once), with no HTTP source that could go away.
        clock = sim.clock
        runner = await _start_gateway(config, path, jwt_secret=secret,
                                      timebase=InProcessClock(clock.now, lambda: clock.speed))
        try:
            url = f"http://{config.gateway.host}:{config.gateway.port}"
            sites = runner.app[SITES]
            deadline = time.monotonic() + 10
            # Print the banner once the devices answered (or give up waiting after 10 s).
            while time.monotonic() < deadline and any(  # noqa: ASYNC110 - bounded readiness poll
                    s.offline() for s in sites.values()):
                await asyncio.sleep(0.1)
            chargers = [f"/homes/{h.id}/chargers/{d.id}" for h in sim.homes.values()
                        for d in h.devices.values() if d.kind == "ocpp_charger"]
            print(demo_banner(url=url, control_url=sim.control_url, sites=site_lines(runner.app),
                              token=token, per_run_secret=per_run_secret,
                              charger_path=next(iter(chargers), None),
                              northbound=northbound_line(config)), flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()
    print("energy-gateway demo stopped.", flush=True)


def northbound_line(config: Config) -> str | None:
    """Where the demo publishes for Home Assistant, for the banner (None: nowhere)."""
    nb = config.mqtt_northbound
    if nb is None:
        return None
    return (f"mqtt://{nb.host}:{nb.port}  (discovery under {nb.discovery_prefix}/device/, "
            f"state under {nb.base_topic}/)")


def parse_host_port(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:1883`` for IPv6) of a command-line option, or a UsageError naming it."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"{option}: expected HOST:PORT (e.g. 127.0.0.1:1883), got {text!r}")
    return host, int(port)


def with_northbound(config: Config, text: str) -> Config:
    """``config`` publishing to the broker at ``text`` (``--mqtt-northbound``); the section's other
    keys (login, topics) are kept when the file has one."""
    from pydantic import ValidationError

    from gateway.core.config import MqttNorthbound

    host, port = parse_host_port(text, "--mqtt-northbound")
    try:
        MqttNorthbound(host=host, port=port)  # validates the host
    except ValidationError as exc:
        raise UsageError(f"--mqtt-northbound: {exc.errors()[0]['msg']}") from None
    current = config.mqtt_northbound
    section = (MqttNorthbound(host=host, port=port) if current is None
               else current.model_copy(update={"host": host, "port": port}))
    return config.model_copy(update={"mqtt_northbound": section})


def _run_demo(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import secrets

    from gateway.core.config import JWT_SECRET_ENV, effective_secret, secret_problem
    from gateway.runtime import preflight
    from gateway.runtime.logs import configure_logging, uses_console
    from gateway.runtime.storage import tokens
    from gateway.web.auth import (
        COMMAND_SCOPE,
        READ_SCOPE,
        STORM_ADMIN_SCOPE,
        parse_ttl,
        sign,
        token_claims,
    )

    path: Path = args.config or _find_default_config()
    loaded = _read(path)
    config = loaded.config
    sim = _simulator(loaded)
    if sim is None:
        raise _config_error(["demo needs a simulator section (see config.example.yaml)"], path)
    _refuse(loaded, _deployment(loaded, "demo", sim) + _simulated_problems(config, sim))
    if args.mqtt_northbound:
        config = with_northbound(config, args.mqtt_northbound)
    secret, from_env = effective_secret(config, os.environ.get(JWT_SECRET_ENV))
    per_run = secret is None or secret_problem(secret, from_env=from_env) is not None
    if per_run or secret is None:  # the published or a weak secret: never sign with it
        secret = secrets.token_urlsafe(48)
    data_dir = config.gateway.data_dir
    _preflight(path, _simulator_listens(sim) + preflight.gateway_listens(config), data_dir)
    claims = token_claims(sub="demo", scopes=[READ_SCOPE, COMMAND_SCOPE, STORM_ADMIN_SCOPE], sites=None,
                          ttl_s=parse_ttl(DEMO_TTL), now_s=time.time())
    if not per_run:  # a token that outlives this run: list it, so it can be revoked
        _registry_call(path, lambda: tokens.record(data_dir,
                                                   tokens.IssuedToken.from_claims(claims)))
    # On a terminal the banner is the story; log details only when asked (--log-level info).
    calm = uses_console(args.log_format) and args.log_level is None
    configure_logging(args.log_format, args.log_level or ("WARNING" if calm else "INFO"))
    _log_deprecations(loaded)
    if calm:  # the embedded broker's shutdown chatter ("1 messages not broadcasted") is no news
        logging.getLogger("amqtt").setLevel(logging.ERROR)
    asyncio.run(_demo(config, sim, path, secret=secret, per_run_secret=per_run,
                      token=sign(secret, claims)))
    return 0


async def _serve(config: Config, path: Path, sandbox: SimulatorConfig | None = None) -> None:
    stop = _stop_event()
    async with contextlib.AsyncExitStack() as stack:
        if sandbox is not None:  # the simulated homes of the sandbox sites, beside the real ones
            from simulator import Simulator

            try:
                await stack.enter_async_context(Simulator(sandbox))
            except OSError as exc:  # a port taken since the preflight check
                raise _config_error([f"cannot start the sandbox simulator: {exc}"],
                                    path) from None
        runner = await _start_gateway(config, path)
        try:
            print(f"energy-gateway serving http://{config.gateway.host}:{config.gateway.port}",
                  flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()


def _sandbox_simulator(loaded: LoadedConfig) -> SimulatorConfig | None:
    """The simulated homes that the sandbox sites' devices name (None without sandbox sites).

    ``serve`` reads the ``simulator:`` section only for them: a real site's devices are never
    simulated by ``serve``.
    """
    sandbox = [s for s in loaded.config.sites if s.sandbox]
    if not sandbox:
        return None
    sim = _simulator(loaded)
    if sim is None:
        raise _config_error(["sites with sandbox: true need a simulator: section with the homes "
                             "their devices name (see config.example.yaml)"],
                            Path(loaded.source))
    homes = {d.simulated.split("/")[0] for s in sandbox for d in s.devices if d.simulated}
    return sim.model_copy(update={"homes": [h for h in sim.homes if h.id in homes]})


def _hub_config(path: Path) -> HubConfig | None:
    """The hub configuration in ``path``, or None when it is a gateway's (no top-level ``hub:``)."""
    import yaml

    from gateway.core.config.hub import is_hub_config, parse_hub_config

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _config_error([f"cannot read: {exc.strerror}"], path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # the gateway's reader reports it with its line
    return parse_hub_config(text, str(path)) if is_hub_config(data) else None


def _run_hub(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.hub.server import serve_hub
    from gateway.runtime.logs import configure_logging

    config = _hub_config(args.config)
    if config is None:
        raise _config_error(["line 1: a hub configuration has a top-level hub: section "
                             "(docs/hub.md)"], args.config)
    from gateway.core.config import JWT_SECRET_ENV, secret_problem

    env = os.environ.get(JWT_SECRET_ENV)
    why = secret_problem(env or config.hub.jwt_secret, from_env=bool(env))
    if why is not None:  # refuse before connecting anything
        raise _config_error([f"hub.jwt_secret: {why}"], args.config)
    configure_logging(args.log_format, args.log_level or "INFO")

    async def run() -> None:
        await serve_hub(config, _stop_event(), port=args.port)

    asyncio.run(run())
    return 0


def _issue_hub(args: argparse.Namespace, config: HubConfig) -> int:
    """A token signed with the hub's secret; any site ids (the hub learns sites from uplinks)."""
    from gateway.core.config import JWT_SECRET_ENV, secret_problem
    from gateway.web.auth import parse_ttl, sign, token_claims

    env = os.environ.get(JWT_SECRET_ENV)
    secret = env or config.hub.jwt_secret
    if secret is None or (why := secret_problem(secret, from_env=bool(env))) is not None:
        raise _config_error([f"hub.jwt_secret: {why if secret else 'no JWT secret'}"], args.config)
    sites = None
    if args.sites is not None:
        sites = parse_sites(args.sites, [int(p) for p in args.sites.split(",")
                                         if p.strip().isdecimal() and len(p.strip()) <= 16] or [1])
    plans = config.hub.rate_limits.plans
    if args.plan is not None and args.plan not in plans:
        raise UsageError(f"--plan: unknown plan {args.plan!r}; this config has "
                         f"{', '.join(sorted(plans))}")
    try:
        ttl_s = parse_ttl(args.ttl)
    except ValueError as exc:
        raise UsageError(f"--ttl: {exc}") from None
    if not args.sub.strip():
        raise UsageError("--sub is empty; name who the token is for, e.g. home-assistant")
    claims = token_claims(sub=args.sub.strip(), scopes=parse_scopes(args.scopes), sites=sites,
                          ttl_s=ttl_s, now_s=time.time(), plan=args.plan)
    token = sign(secret, claims)
    from gateway.runtime.storage.tokens import IssuedToken

    _hub_registry(args.config, config, lambda store: store.record_token(
        IssuedToken.from_claims(claims)))
    print(token)
    return 0


def _hub_registry(path: Path, config: HubConfig, call: Callable[[HubStore], Awaitable[_T]]) -> _T:
    """One call on the hub's token registry in PostgreSQL (migrated first), for the CLI."""
    import asyncio

    import asyncpg

    from gateway.hub.db import HubStore, connect

    async def once() -> _T:
        pool = await connect(config.hub.postgres_dsn, min_size=1, max_size=1)
        try:
            return await call(HubStore(pool))
        finally:
            await pool.close()

    try:
        return asyncio.run(once())
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise _config_error([f"hub.postgres_dsn: cannot use the token registry: "
                             f"{type(exc).__name__}: {exc}"], path) from None


def _run_serve(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.runtime import preflight
    from gateway.runtime.logs import configure_logging

    loaded = _read(args.config)
    sandbox = _sandbox_simulator(loaded)
    problems = _deployment(loaded, "serve", sandbox)
    if sandbox is not None:
        sandbox_sites = [s for s in loaded.config.sites if s.sandbox]
        problems += [p for p in _simulated_problems(loaded.config, sandbox)
                     if loaded.config.sites[int(p.loc[1])] in sandbox_sites]
    _refuse(loaded, problems)
    config = loaded.config
    listens = preflight.gateway_listens(config)
    if sandbox is not None:
        listens = _simulator_listens(sandbox) + listens
    _preflight(args.config, listens, config.gateway.data_dir)
    configure_logging(args.log_format, args.log_level or "INFO")
    _log_deprecations(loaded)
    asyncio.run(_serve(config, args.config, sandbox))
    return 0


async def _simulate(sim_config: SimulatorConfig, path: Path) -> None:
    import asyncio

    from simulator.run import serve

    task = asyncio.create_task(serve(sim_config))
    stop = asyncio.create_task(_stop_event().wait())
    done, pending = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    for running in pending:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    if task in done:  # the simulator ended by itself: it could not start
        failure = task.exception()
        if isinstance(failure, OSError):  # a port taken since the preflight check
            raise _config_error([f"cannot start the simulator: {failure}"], path)
        await task  # anything else is a bug: keep its traceback


def _run_simulate(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.runtime.logs import configure_logging

    loaded = _read(args.config)
    sim = _simulator(loaded)
    if sim is None:
        raise _config_error(["no simulator section to run"], args.config)
    _refuse(loaded, _simulated_problems(loaded.config, sim))
    _preflight(args.config, _simulator_listens(sim), None)
    configure_logging(args.log_format, args.log_level or "INFO")
    _log_deprecations(loaded)
    asyncio.run(_simulate(sim, args.config))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    loaded = _read(args.file)
    config = loaded.config
    sim = _simulator(loaded)
    purpose: Purpose = args.purpose
    if args.purpose == "auto":  # every device simulated: a demo config, not one to serve
        simulated = all(d.simulated for s in config.sites for d in s.devices)
        purpose = "demo" if simulated and sim is not None else "serve"
    problems = _deployment(loaded, purpose, sim) + _simulated_problems(config, sim)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for line in loaded.locate(errors):
        print(f"{args.file}: {line}", file=sys.stderr)
    for line in loaded.locate(warnings):
        print(f"{args.file}: warning: {line}", file=sys.stderr)
    for line in _deprecation_lines(loaded):
        print(line, file=sys.stderr)
    if errors:
        return 1
    devices = sum(len(s.devices) for s in config.sites)
    print(f"{args.file}: ok for {purpose} ({len(config.sites)} sites, {devices} devices)")
    return 0


# ---- init ------------------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    """Write the starter config (and an environment file with a fresh secret); never overwrite."""
    import secrets

    from gateway.core.config import JWT_SECRET_ENV
    from gateway.core.config.starter import STARTER

    targets: list[tuple[Path, str, int]] = [(args.config, STARTER, 0o644)]
    if args.env_file is not None:
        line = f"{JWT_SECRET_ENV}={secrets.token_urlsafe(48)}\n"
        targets.append((args.env_file, line, 0o600))  # the secret: readable by root alone
    for path, _, _ in targets:
        if path.exists():
            raise UsageError(f"{path} exists; init never overwrites a file (move it away first)")
    for path, text, mode in targets:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {path}")
    print(f"next: edit {args.config}, then  energy-gateway check-config {args.config}")
    return 0


# ---- tokens ----------------------------------------------------------------------------------


def parse_sites(text: str | None, known: Sequence[int]) -> list[int] | None:
    """``--sites`` as site ids of this config; None (every site) when not given."""
    if text is None:
        return None
    ids = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdecimal() or len(part) > 16:
            raise UsageError(f"--sites: {part!r} is not a site id; give comma-separated "
                             f"energy_site_id values, e.g. {known[0]}")
        ids.append(int(part))
    if not ids:
        raise UsageError("--sites is empty; leave it out for a token that reaches every site")
    unknown = sorted(set(ids) - set(known))
    if unknown:
        raise UsageError(f"--sites: {', '.join(map(str, unknown))} not in this config; its "
                         f"sites are {', '.join(map(str, known))}")
    return sorted(set(ids))


def parse_scopes(text: str) -> list[str]:
    """``--scopes`` as a list of known scopes (at least one)."""
    from gateway.core.access import KNOWN_SCOPES

    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    known = ", ".join(sorted(KNOWN_SCOPES))
    if not scopes:
        raise UsageError(f"--scopes is empty; give at least one of {known}")
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        raise UsageError(f"--scopes: unknown {', '.join(unknown)}; known scopes: {known}")
    return scopes


def _read_for_tokens(path: Path) -> LoadedConfig:
    """A config for the token commands; its deprecated keys as warnings on stderr (no logging)."""
    loaded = _read(path)
    for line in _deprecation_lines(loaded):
        print(line, file=sys.stderr)
    return loaded


def _issue(args: argparse.Namespace) -> int:
    from gateway.core.config import JWT_SECRET_ENV, Problem, effective_secret, secret_problem
    from gateway.runtime.storage import tokens
    from gateway.web.auth import parse_ttl, sign, token_claims

    hub = _hub_config(args.config)
    if hub is not None:
        return _issue_hub(args, hub)
    loaded = _read_for_tokens(args.config)
    config = loaded.config
    # a token signed with a weak secret is worth nothing: serve refuses the secret, and anyone
    # holding it can forge tokens
    secret, from_env = effective_secret(config, os.environ.get(JWT_SECRET_ENV))
    if (why := secret_problem(secret, from_env=from_env)) is not None or secret is None:
        raise _config_error(loaded.locate([Problem(("gateway", "jwt_secret"), why or "")]),
                            args.config)
    scopes = parse_scopes(args.scopes)
    sites = parse_sites(args.sites, [s.energy_site_id for s in config.sites])
    plans = config.gateway.rate_limits.plans
    if args.plan is not None and args.plan not in plans:
        raise UsageError(f"--plan: unknown plan {args.plan!r}; this config has "
                         f"{', '.join(sorted(plans))}")
    if not args.sub.strip():
        raise UsageError("--sub is empty; name who the token is for, e.g. home-assistant")
    try:
        ttl_s = parse_ttl(args.ttl)
    except ValueError as exc:
        raise UsageError(f"--ttl: {exc}") from None
    sandbox = {s.energy_site_id for s in config.sites if s.sandbox}
    test = args.env == "test"
    if test and not sandbox:
        raise UsageError("--env test: this config has no site with sandbox: true; a test token "
                         "would reach nothing")
    wrong = [s for s in sites or [] if (s in sandbox) != test]
    if wrong:
        kind = "not sandbox sites (a test token reaches sandbox sites only)" if test else \
            "sandbox sites (only a token issued with --env test reaches them)"
        raise UsageError(f"--sites: {', '.join(map(str, wrong))} are {kind}")
    claims = token_claims(sub=args.sub.strip(), scopes=scopes, sites=sites, ttl_s=ttl_s,
                          now_s=time.time(), plan=args.plan, env=args.env)
    token = sign(secret, claims)
    _registry_call(args.config, lambda: tokens.record(config.gateway.data_dir,
                                                      tokens.IssuedToken.from_claims(claims)))
    print(token)
    return 0


def _registry_call(path: Path, call: Callable[[], _T]) -> _T:
    import sqlite3

    from gateway.runtime.storage import StorageError

    try:
        return call()
    except (OSError, sqlite3.Error, StorageError) as exc:
        raise _config_error([f"gateway.data_dir: cannot use the token registry: {exc}"],
                            path) from None


def _when(unix_s: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _list(args: argparse.Namespace) -> int:
    from gateway.runtime.storage import tokens

    hub = _hub_config(args.config)
    if hub is not None:
        issued = _hub_registry(args.config, hub, lambda store: store.unexpired_tokens(time.time()))
    else:
        config = _read_for_tokens(args.config).config
        issued = _registry_call(args.config, lambda: tokens.unexpired(config.gateway.data_dir,
                                                                      time.time()))
    if not issued:
        print("no unexpired tokens issued")
        return 0
    rows = [("jti", "sub", "env", "scopes", "sites", "plan", "expires", "status")]
    rows += [(t.jti, t.sub, t.env, ",".join(t.scopes),
              "*" if t.sites is None else ",".join(map(str, t.sites)), t.plan or "-",
              _when(t.expires_at), "revoked" if t.revoked_at is not None else "active")
             for t in issued]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from gateway.runtime.storage import tokens

    jti = args.jti.strip()
    hub = _hub_config(args.config)
    if hub is not None:
        found = _hub_registry(args.config, hub, lambda store: store.revoke_token(jti, time.time()))
        where, secret_key, who = "the hub's registry (PostgreSQL)", "hub.jwt_secret", "hub replica"
    else:
        config = _read_for_tokens(args.config).config
        found = _registry_call(args.config, lambda: tokens.revoke(config.gateway.data_dir, jti,
                                                                  time.time()))
        where = str(config.gateway.data_dir / tokens.DB_NAME)
        secret_key, who = "gateway.jwt_secret", "gateway"
    if found is None:
        raise UsageError(f"no token with jti {jti!r} in {where}; `energy-gateway token list` "
                         f"shows the issued ones (to invalidate every token at once, change "
                         f"{secret_key})")
    print(f"revoked {found.jti} (sub {found.sub}, expires {_when(found.expires_at)}); a running "
          f"{who} refuses it within {tokens.REFRESH_S:g} s")
    return 0


# ---- scan ------------------------------------------------------------------------------------

#: Most (port, unit) pairs one scan tries: a typo such as 1-65535 must not run for hours.
MAX_SCAN_PAIRS = 1024


def _numbers(text: str, flag: str, low: int, high: int) -> list[int]:
    """``502,1502`` or ``1-3,5`` as a sorted list of distinct numbers within ``low..high``."""
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise UsageError(f"{flag}: {part!r} is not a number or a range like 1-3") from None
        if not low <= lo <= hi <= high:
            raise UsageError(f"{flag}: {part!r} is outside {low}..{high}")
        out.update(range(lo, hi + 1))
    return sorted(out)


def _run_scan(args: argparse.Namespace) -> int:
    import asyncio

    from drivers.scan import render, scan
    from gateway.runtime.logs import configure_logging

    ports = _numbers(args.ports, "--ports", 1, 65535)
    units = _numbers(args.units, "--units", 0, 255)
    if len(ports) * len(units) > MAX_SCAN_PAIRS:
        raise UsageError(f"--ports x --units is {len(ports) * len(units)} pairs; at most "
                         f"{MAX_SCAN_PAIRS} per scan")
    # stdout is the snippet alone; log lines and progress go to stderr.
    configure_logging(args.log_format, args.log_level or "WARNING")
    result = asyncio.run(scan(args.host, ports, units, timeout_s=args.timeout, total_s=args.total,
                              say=lambda line: print(f"# {line}", file=sys.stderr, flush=True)))
    print(render(result, total_s=args.total), end="")
    return 0 if result.found else 1


# ---- parser ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from gateway.core.access import COMMAND_SCOPE, MAX_TTL_S, READ_SCOPE  # constants only

    parser = argparse.ArgumentParser(prog="energy-gateway", description=__doc__)
    parser.add_argument("--log-format", choices=["auto", "console", "json"], default="auto",
                        help="log line format: console on a terminal and JSON otherwise (auto, "
                             "the default), or forced")
    parser.add_argument("--log-level", default=None, type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="the least severe log lines shown (default: INFO; for demo on a "
                             "terminal WARNING, with a summary banner instead)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = "the YAML configuration file"
    demo = sub.add_parser("demo", help="simulator and gateway in one process")
    demo.add_argument("--config", type=Path, default=None,
                      help=f"{config_help} (default: {DEFAULT_CONFIG}); needs a simulator section")
    demo.add_argument("--mqtt-northbound", metavar="HOST:PORT", default=None,
                      help="publish the sites to this MQTT broker with Home Assistant discovery "
                           "(default: the config's mqtt_northbound section, else none)")
    serve = sub.add_parser("serve", help="the gateway against the configured devices")
    serve.add_argument("--config", type=Path, required=True, help=config_help)
    simulate = sub.add_parser("simulate", help="the simulated devices of a config, alone")
    simulate.add_argument("--config", type=Path, required=True,
                          help=f"{config_help}; its simulator section is run")
    init = sub.add_parser("init", help="write a commented starter config (never overwrites)")
    init.add_argument("--config", type=Path, default=Path("config.yaml"),
                      help="where to write it (default: config.yaml)")
    init.add_argument("--env-file", type=Path, default=None,
                      help="also write an environment file holding a fresh JWT secret (mode "
                           "0600), for systemd's EnvironmentFile= or docker --env-file")
    token = sub.add_parser("token", help="bearer tokens: issue, list, revoke")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    registry = ("recorded (jti, sub, scopes, sites, expiry; never the token) in the registry "
                "under gateway.data_dir")
    issue = token_sub.add_parser("issue", help=f"print a new bearer token; it is {registry}")
    issue.add_argument("--config", type=Path, required=True,
                       help=f"{config_help}: its secret signs the token, its sites bound --sites")
    issue.add_argument("--scopes", required=True,
                       help=f"comma-separated, e.g. {READ_SCOPE},{COMMAND_SCOPE} "
                            f"({READ_SCOPE}: reads, {COMMAND_SCOPE}: commands)")
    issue.add_argument("--sites", default=None,
                       help="comma-separated energy_site_id values of the config (default: all)")
    issue.add_argument("--ttl", default="30d",
                       help=f"lifetime: a number with s, m, h, d or w, e.g. 12h or 30d "
                            f"(default 30d, at most {MAX_TTL_S // 86_400}d)")
    issue.add_argument("--sub", default="cli",
                       help="who the token is for, shown in logs and `token list` (default: cli)")
    issue.add_argument("--env", choices=["live", "test"], default="live",
                       help="live (the default): the real sites; test: a sandbox token that "
                            "reaches only sites with sandbox: true (simulated), and never the "
                            "real ones")
    issue.add_argument("--plan", default=None,
                       help="rate-limit plan from gateway.rate_limits.plans (default: its "
                            "default_plan)")
    listing = token_sub.add_parser("list", help="issued tokens that have not expired")
    listing.add_argument("--config", type=Path, required=True,
                         help=f"{config_help}: its gateway.data_dir holds the registry")
    revoke = token_sub.add_parser(
        "revoke", help=f"refuse a token from now on; a running gateway honours it within "
                       f"{REVOKED_WITHIN_S:g} s")
    revoke.add_argument("--config", type=Path, required=True,
                        help=f"{config_help}: its gateway.data_dir holds the registry")
    revoke.add_argument("jti", help="the token's jti, as `token list` shows it")
    hub = sub.add_parser("hub", help="the hub: one Fleet API for every site of every uplinked "
                                     "gateway (docs/hub.md)")
    hub.add_argument("--config", type=Path, required=True, help="the hub's YAML file (hub:)")
    hub.add_argument("--port", type=int, default=None,
                     help="listen on this port instead of hub.port (replicas sharing one file)")
    scan = sub.add_parser("scan", help="find SunSpec and profile devices on a host; prints a "
                                       "devices: snippet")
    scan.add_argument("host", help="the device's (or Modbus gateway's) address")
    scan.add_argument("--ports", default="502", help="comma-separated ports or ranges "
                                                     "(default: 502; Huawei's inverter AP: 6607)")
    scan.add_argument("--units", default="1", help="comma-separated unit ids or ranges (default: 1)")
    scan.add_argument("--timeout", type=float, default=1.0, help="seconds per request (default 1)")
    scan.add_argument("--total", type=float, default=60.0,
                      help="seconds for the whole scan; what was found by then is printed "
                           "(default 60)")
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=Path, help="the YAML configuration file to check")
    check.add_argument("--for", dest="purpose", choices=["auto", "serve", "demo"], default="auto",
                       help="judge it for serve (the JWT secret must be a real one) or demo; "
                            "auto: demo when every device is simulated, else serve")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``energy-gateway`` console script."""
    args = _parser().parse_args(argv)
    from gateway.core.config import ConfigError  # every command reads a config

    commands = {"demo": _run_demo, "serve": _run_serve, "simulate": _run_simulate,
                "check-config": _check_config, "init": _init, "scan": _run_scan,
                "hub": _run_hub}
    token_commands = {"issue": _issue, "list": _list, "revoke": _revoke}
    try:
        if args.command == "token":
            return token_commands[args.token_command](args)
        return commands[args.command](args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (UsageError, ValueError) as exc:
        print(f"energy-gateway: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        import structlog

        structlog.get_logger("gateway.cli").info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
