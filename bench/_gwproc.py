"""Bench helper process: one gateway (create_app + AppRunner) for the devices listed in a file.

Prints ``{"url", "pid", "devices"}`` once serving, then answers one JSON line per stdin command:
``wait_online`` (all devices read and first settings applied), ``start`` / ``stop`` (a measurement
window: poll ages sampled at random instants, polls and missed polls counted, optional profile),
``quit``. With an empty device list it only imports the gateway (the 0-device memory baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from bench._common import bench_config, percentile, raise_fd_limit
from gateway.runtime.devices import DeviceView
from gateway.runtime.logs import configure_logging
from gateway.web.app import create_app
from gateway.web.keys import SITES


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()


class Window:
    """One measurement window over every device handle of the gateway."""

    def __init__(self, handles: list[DeviceView]) -> None:
        self.handles = handles
        self.ages: list[float] = []
        self.polls0 = sum(h.polls for h in handles)
        self.missed0 = sum(h.missed_polls for h in handles)
        self.failures0 = sum(h.failures for h in handles)
        self.started = time.monotonic()
        self._rng = random.Random(7)
        self.task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        # Random gaps, so samples land at every phase of the pollers' 1 s cycle.
        while True:
            await asyncio.sleep(self._rng.uniform(0.1, 0.5))
            now = datetime.now(UTC)
            for h in self.handles:
                t = h.telemetry
                if t is not None:
                    self.ages.append((now - t.taken_at).total_seconds())

    async def stop(self) -> dict[str, Any]:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        elapsed = time.monotonic() - self.started
        handles = self.handles
        never = sum(1 for h in handles if h.telemetry is None)
        return {
            "elapsed_s": elapsed,
            "polls": sum(h.polls for h in handles) - self.polls0,
            "missed_polls": sum(h.missed_polls for h in handles) - self.missed0,
            "never_read": never,
            "age_samples": len(self.ages),
            "age_p50_s": percentile(self.ages, 50),
            "age_p99_s": percentile(self.ages, 99),
            "age_max_s": max(self.ages, default=float("nan")),
        }


async def _stdin_lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main(endpoints: list[dict[str, Any]], data_dir: Path, poll_s: float,
               profile: Path | None, *, first_site: int = 1001, uplink: str | None = None,
               gateway_id: str = "bench-edge", timeout_s: float = 1.0) -> None:
    """Serve the gateway and answer commands until stdin closes."""
    runner: web.AppRunner | None = None
    handles: list[DeviceView] = []
    app: web.Application | None = None
    url = ""
    if endpoints:
        config = bench_config(endpoints, data_dir, poll_interval_s=poll_s, first_site_id=first_site,
                              timeout_s=timeout_s)
        if uplink is not None:  # bench/hub.py: publish to the hub's broker
            from gateway.core.config.models import UplinkSection

            host, port = uplink.rsplit(":", 1)
            config = config.model_copy(update={"uplink": UplinkSection(
                host=host, port=int(port), gateway_id=gateway_id, live_every_s=10)})
        app = create_app(config)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        handles = [h for site in app[SITES].values() for h in site.devices]
    gc.collect()
    _emit({"url": url, "devices": len(handles)})
    lines = await _stdin_lines()
    window: Window | None = None
    profiler: Any = None
    started = time.monotonic()
    try:
        while True:
            line = (await lines.readline()).strip().decode()
            if not line or line == "quit":
                break
            if line == "wait_online":
                assert app is not None  # noqa: S101 - only asked with devices
                sites = list(app[SITES].values())
                while any(s.offline() or s.applied is None for s in sites):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # polls state this helper does not own
                _emit({"online_s": round(time.monotonic() - started, 2)})
            elif line == "start":
                window = Window(handles)
                if profile is not None:
                    from pyinstrument import Profiler

                    profiler = Profiler(interval=0.001, async_mode="disabled")
                    profiler.start()
                _emit({"started": True})
            elif line == "stop":
                assert window is not None  # noqa: S101 - protocol order
                result = await window.stop()
                if profiler is not None and profile is not None:
                    profiler.stop()
                    profile.write_text(  # noqa: ASYNC240 - once, after the window
                        profiler.output_text(unicode=False, color=False, show_all=False))
                    result["profile"] = str(profile)
                _emit(result)
            elif line == "gc":
                gc.collect()
                _emit({"gc": True})
            else:
                _emit({"error": f"unknown command {line!r}"})
    finally:
        if runner is not None:
            await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=Path, required=True, help="JSON list of endpoints")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--poll-s", type=float, default=1.0)
    parser.add_argument("--profile", type=Path, default=None, help="write a pyinstrument profile")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--first-site", type=int, default=1001, help="energy_site_id of the first")
    parser.add_argument("--uplink", default=None, help="HOST:PORT of a hub's broker (bench/hub.py)")
    parser.add_argument("--gateway-id", default="bench-edge")
    parser.add_argument("--timeout-s", type=float, default=1.0, help="device answer timeout")
    args = parser.parse_args()
    raise_fd_limit()
    # As deployed: JSON log lines on stderr (the bench sends them to a file).
    configure_logging("json", args.log_level)
    eps = orjson.loads(args.endpoints.read_bytes())
    asyncio.run(main(eps, args.data_dir, args.poll_s, args.profile, first_site=args.first_site,
                     uplink=args.uplink, gateway_id=args.gateway_id, timeout_s=args.timeout_s))
