"""energy-gateway command line: demo | serve | simulate | token issue | check-config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import structlog
from aiohttp import web

from gateway.auth import COMMAND_SCOPE, READ_SCOPE, issue_token, parse_ttl
from gateway.config import Config, ConfigError, load_config
from gateway.logging import configure_logging

DEFAULT_CONFIG = "config.example.yaml"


def _find_default_config() -> Path:
    here = Path(DEFAULT_CONFIG)
    if here.exists():
        return here
    # an editable install run from elsewhere: the example next to the package
    bundled = Path(__file__).resolve().parents[1] / DEFAULT_CONFIG
    return bundled if bundled.exists() else here


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _start_gateway(config: Config) -> web.AppRunner:
    from gateway.app import create_app
    from gateway.server import GatewayRunner

    runner = GatewayRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.gateway.host, config.gateway.port)
    await site.start()
    return runner


async def _demo(config: Config, config_path: Path) -> None:
    from gateway.api.keys import SITES
    from simulator import Simulator

    if config.simulator is None:
        raise ConfigError(["demo needs a simulator section"], str(config_path))
    async with Simulator(config.simulator) as sim:
        runner = await _start_gateway(config)
        try:
            url = f"http://{config.gateway.host}:{config.gateway.port}"
            token = issue_token(config.jwt_secret(), sub="demo", scopes=[READ_SCOPE, COMMAND_SCOPE],
                                sites=None, ttl_s=parse_ttl("30d"), now_s=time.time())
            sites = runner.app[SITES]
            deadline = time.monotonic() + 10
            # Print the banner once the devices answered (or give up waiting after 10 s).
            while time.monotonic() < deadline and any(  # noqa: ASYNC110 - bounded readiness poll
                    s.offline() for s in sites.values()):
                await asyncio.sleep(0.1)
            print(f"energy-gateway demo: gateway at {url}")
            print(f"simulator control API at {sim.control_url}")
            for site_config in config.sites:
                print(f"site {site_config.energy_site_id}: {site_config.name}")
            print(f"token (both scopes, all sites, 30 days):\n{token}")
            print(f'try: curl -H "Authorization: Bearer $TOKEN" '
                  f"{url}/api/1/energy_sites/{config.sites[0].energy_site_id}/live_status")
            print("Ctrl-C stops.", flush=True)
            await _wait_for_stop()
        finally:
            await runner.cleanup()


async def _serve(config: Config) -> None:
    runner = await _start_gateway(config)
    try:
        print(f"energy-gateway serving http://{config.gateway.host}:{config.gateway.port}",
              flush=True)
        await _wait_for_stop()
    finally:
        await runner.cleanup()


async def _simulate(config: Config, config_path: Path) -> None:
    from simulator.run import serve

    if config.simulator is None:
        raise ConfigError(["no simulator section to run"], str(config_path))
    task = asyncio.create_task(serve(config.simulator))
    await _wait_for_stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="energy-gateway", description=__doc__)
    parser.add_argument("--log-format", choices=["auto", "console", "json"], default="auto")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulator and gateway in one process")
    demo.add_argument("--config", type=Path, default=None)
    serve = sub.add_parser("serve", help="the gateway against the configured devices")
    serve.add_argument("--config", type=Path, required=True)
    simulate = sub.add_parser("simulate", help="the simulated devices of a config, alone")
    simulate.add_argument("--config", type=Path, required=True)
    token = sub.add_parser("token", help="bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    issue = token_sub.add_parser("issue", help="print a new bearer token")
    issue.add_argument("--config", type=Path, required=True)
    issue.add_argument("--scopes", required=True, help="comma-separated, e.g. "
                       f"{READ_SCOPE},{COMMAND_SCOPE}")
    issue.add_argument("--sites", default=None, help="comma-separated site ids (default: all)")
    issue.add_argument("--ttl", default="30d")
    issue.add_argument("--sub", default="cli")
    issue.add_argument("--plan", default=None)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=Path)
    return parser


def _issue(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    sites = None if args.sites is None else [int(s) for s in args.sites.split(",") if s.strip()]
    if args.plan is not None and args.plan not in config.gateway.rate_limits.plans:
        raise ValueError(f"unknown plan {args.plan!r}")
    print(issue_token(config.jwt_secret(), sub=args.sub, scopes=scopes, sites=sites,
                      ttl_s=parse_ttl(args.ttl), now_s=time.time(), plan=args.plan))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``energy-gateway`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            config = load_config(args.file)
            devices = sum(len(s.devices) for s in config.sites)
            print(f"{args.file}: ok ({len(config.sites)} sites, {devices} devices)")
            return 0
        if args.command == "token":
            return _issue(args)
        configure_logging(args.log_format, args.log_level)
        config_path = args.config or _find_default_config()
        config = load_config(config_path)
        if args.command == "demo":
            asyncio.run(_demo(config, config_path))
        elif args.command == "serve":
            asyncio.run(_serve(config))
        else:
            asyncio.run(_simulate(config, config_path))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        structlog.get_logger("gateway.cli").info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
