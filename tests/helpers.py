"""Shared test helpers: polling with a deadline, configs on free ports, tokens."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from gateway.core.config import Config, DeviceConfig, GatewaySection, Plan, RateLimits, SiteConfig
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE, issue_token
from simulator import Simulator

T = TypeVar("T")
SECRET = "integration-test-secret-0123456789"
SITE_ID = 1001


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], object] = ..., *,
    timeout: float = ..., interval: float = ...,
) -> T: ...
@overload
async def eventually(
    probe: Callable[[], T], until: Callable[[T], object] = ..., *,
    timeout: float = ..., interval: float = ...,
) -> T: ...
async def eventually(
    probe: Callable[[], Any], until: Callable[[Any], object] = bool, *,
    timeout: float = 10.0, interval: float = 0.02,
) -> Any:
    """Call ``probe`` until ``until(result)`` holds or the deadline passes (then fail loudly)."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if inspect.isawaitable(last):
            last = await last
        if until(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s; last: {last!r}")
        await asyncio.sleep(interval)


def gateway_config(
    sim: Simulator, data_dir: Path, *, ref: str = "home-1001/inverter", poll_interval_s: float = 0.1,
    plans: dict[str, Plan] | None = None, command_timeout_s: float = 3.0,
    stale_after_s: float | None = None,
) -> Config:
    """A gateway config with one SunSpec site wired to the simulator's bound port."""
    endpoint = sim.endpoint(ref)
    limits = RateLimits(plans=plans) if plans else RateLimits()
    device = DeviceConfig.model_validate({
        "name": "inverter", "type": "sunspec", "poll_interval_s": poll_interval_s,
        "stale_after_s": stale_after_s,
        "options": {"host": endpoint.host, "port": endpoint.port, "unit_id": endpoint.unit_id,
                    "timeout_s": 0.5, "confirm_timeout_s": 2.0},
    })
    return Config(
        gateway=GatewaySection(port=0, data_dir=data_dir, jwt_secret=SECRET,
                               rate_limits=limits, command_timeout_s=command_timeout_s,
                               reconcile_interval_s=0.5),
        sites=[SiteConfig(energy_site_id=SITE_ID, name="Test Home", time_zone="Europe/Berlin",
                          devices=[device])],
    )


def token(
    scopes: tuple[str, ...] = (READ_SCOPE, COMMAND_SCOPE), sites: list[int] | None = None,
    ttl_s: int = 600, plan: str | None = None, now_s: float | None = None,
) -> str:
    """A bearer token signed with the test secret."""
    return issue_token(SECRET, sub="test", scopes=scopes, sites=sites, ttl_s=ttl_s,
                       now_s=time.time() if now_s is None else now_s, plan=plan)


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now (all bound at once, so never the same)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
