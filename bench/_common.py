"""Shared bench plumbing: helper processes, configs, tokens, percentiles and table printing."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.core.config import Config, DeviceConfig, GatewaySection, Plan, RateLimits, SiteConfig
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE, issue_token

SECRET = "bench-secret-0123456789-0123456789-abcdef"  # noqa: S105 - a throwaway bench key
FIRST_SITE_ID = 1001
ROOT = Path(__file__).resolve().parent.parent


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (NaN when empty)."""
    return percentile(values, 50)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table (so it can be pasted into docs/benchmarks.md as is)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def machine() -> str:
    """One line naming the machine: logical cores, CPU model, Python, OS."""
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} logical cores ({model}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def bench_token(sites: list[int] | None = None) -> str:
    """A bearer token with both scopes, on the unlimited bench plan."""
    return issue_token(SECRET, sub="bench", scopes=(READ_SCOPE, COMMAND_SCOPE), sites=sites,
                       ttl_s=24 * 3600, now_s=time.time(), plan="bench")


def bench_config(endpoints: Sequence[dict[str, Any]], data_dir: Path, *, poll_interval_s: float = 1.0,
                 timeout_s: float = 1.0, first_site_id: int = FIRST_SITE_ID) -> Config:
    """One site per simulated device; a rate-limit plan that never limits the benchmark.

    An endpoint is SunSpec unless it names its ``type`` (and extra ``options``, e.g. a profile).
    """
    sites = []
    for i, ep in enumerate(endpoints):
        device = DeviceConfig.model_validate({
            "name": "inverter", "type": ep.get("type", "sunspec"), "poll_interval_s": poll_interval_s,
            "options": {"host": ep["host"], "port": ep["port"], "unit_id": ep["unit_id"],
                        "timeout_s": timeout_s, **ep.get("options", {})},
        })
        sites.append(SiteConfig(energy_site_id=first_site_id + i, name=f"Bench {i}",
                                time_zone="Europe/Berlin", devices=[device]))
    unlimited = Plan(per_minute=10**12, per_day=10**12)
    return Config(
        gateway=GatewaySection(port=0, data_dir=data_dir, jwt_secret=SECRET,
                               rate_limits=RateLimits(default_plan="bench", plans={"bench": unlimited})),
        sites=sites,
    )


@dataclass
class Helper:
    """A bench helper process speaking one JSON object per line on stdout."""

    proc: asyncio.subprocess.Process
    hello: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def ask(self, command: str, timeout_s: float = 600.0) -> dict[str, Any]:
        """Send one command line and wait for its one-line JSON answer."""
        assert self.proc.stdin is not None  # noqa: S101 - created with PIPE
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.read(timeout_s)

    async def read(self, timeout_s: float = 600.0) -> dict[str, Any]:
        """The next JSON line the helper prints."""
        assert self.proc.stdout is not None  # noqa: S101 - created with PIPE
        async with asyncio.timeout(timeout_s):
            line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"helper {self.pid} exited (rc={await self.proc.wait()})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer


@contextlib.asynccontextmanager
async def helper(module: str, *args: str, log_path: Path | None = None,
                 start_timeout_s: float = 600.0) -> AsyncIterator[Helper]:
    """Run ``python -m <module> <args>``; yields once it printed its first JSON line."""
    stderr = log_path.open("ab") if log_path else asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        limit=64 * 1024 * 1024,
    )
    try:
        running = Helper(proc, {})
        running.hello = await running.read(start_timeout_s)
        yield running
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if log_path and not isinstance(stderr, int):
            stderr.close()


def raise_fd_limit() -> None:
    """Thousands of device sockets need more than the usual 1024 descriptors."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def quiet_logging() -> None:
    """The bench's own process logs warnings only, to stderr (stdout carries the tables)."""
    from gateway.runtime.logs import configure_logging

    configure_logging("console", "WARNING")
