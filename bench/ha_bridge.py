"""The Home Assistant bridge's cost: loop lag and polling with it vs without, and a control's round trip.

Run: ``.venv/bin/python -m bench.ha_bridge [--sites 20] [--seconds 10]`` (needs ``mosquitto``).

The simulated homes run in a helper process, Mosquitto in its own; the gateway (the runtime
``Gateway``, no HTTP) runs here twice on the same homes: without the bridge (the baseline) and
with it, publishing every ``--state-interval-s``. Each run measures the event loop's lag (a 10 ms
sleep's overshoot) and the polls per device per second. With the bridge it also counts what a
subscriber sees, times each publishing pass, and times backup-reserve changes sent as Home
Assistant sends them (MQTT command -> device confirmed -> state published) against the same
change through ``Site.command`` directly.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

from bench._common import FIRST_SITE_ID, bench_config, helper, machine, percentile, print_table, quiet_logging
from gateway.core.config import Config, MqttNorthbound
from gateway.runtime.gateway import Gateway
from gateway.runtime.homeassistant import HomeAssistantBridge
from tests.integration.brokers import free_port


class Subscriber:
    """Counts messages and bytes; keeps the newest state per site (paho on its own thread)."""

    def __init__(self, port: int, *, nodelay: bool = False) -> None:
        self.nodelay = nodelay
        self.client = Client(CallbackAPIVersion.VERSION2, client_id="bench-ha")
        self.client.on_message = self._on_message
        self.port = port
        self.lock = threading.Lock()
        self.messages = 0
        self.bytes = 0
        self.states: dict[str, dict[str, Any]] = {}
        self.changed = threading.Event()

    def _on_message(self, _c: Client, _u: object, msg: MQTTMessage) -> None:
        with self.lock:
            self.messages += 1
            self.bytes += len(msg.payload)
            if msg.topic.endswith("/state") and msg.payload:
                self.states[msg.topic] = orjson.loads(msg.payload)
        self.changed.set()

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        sock = self.client.socket()
        if self.nodelay and sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        self.client.subscribe([("homeassistant/#", 0), ("energy-gateway/#", 0)])

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def lag_probe(stop: asyncio.Event, out: list[float]) -> None:
    """Overshoot of a 10 ms sleep, in ms, until ``stop``."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.01)
        out.append((loop.time() - start - 0.01) * 1000)


async def measure(config: Config, seconds: float, sub: Subscriber | None) -> dict[str, Any]:
    """One run of the gateway for ``seconds`` once every site is online."""
    passes: list[float] = []
    original = HomeAssistantBridge._publish_pass

    async def timed(self: HomeAssistantBridge) -> None:
        started = time.perf_counter()
        await original(self)
        passes.append((time.perf_counter() - started) * 1000)

    HomeAssistantBridge._publish_pass = timed  # type: ignore[method-assign]
    try:
        async with Gateway(config) as gw:
            deadline = time.monotonic() + 60
            while any(s.offline() for s in gw.sites.values()) and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded readiness poll
                await asyncio.sleep(0.1)
            devices = [d for s in gw.sites.values() for d in s.devices]
            polls0 = sum(d.polls for d in devices)
            msgs0 = (sub.messages, sub.bytes) if sub else (0, 0)
            stop, lags = asyncio.Event(), []
            probe = asyncio.create_task(lag_probe(stop, lags))
            await asyncio.sleep(seconds)
            stop.set()
            await probe
            polls = (sum(d.polls for d in devices) - polls0) / len(devices) / seconds
            result: dict[str, Any] = {"lag_p50": percentile(lags, 50), "lag_p99": percentile(lags, 99),
                                      "polls_per_s": polls, "passes": list(passes)}
            if sub is not None:
                result["msgs_per_s"] = (sub.messages - msgs0[0]) / seconds
                result["kib_per_s"] = (sub.bytes - msgs0[1]) / 1024 / seconds
                result["ha_ms"], result["direct_ms"] = await round_trips(gw, sub)
            return result
    finally:
        HomeAssistantBridge._publish_pass = original  # type: ignore[method-assign]


async def round_trips(gw: Gateway, sub: Subscriber, count: int = 20) -> tuple[list[float], list[float]]:
    """Reserve changes: as Home Assistant sends them (until the state shows them) and directly."""
    site = gw.sites[FIRST_SITE_ID]
    topic = f"energy-gateway/{FIRST_SITE_ID}/state"
    via_ha, direct = [], []
    for i in range(count):
        value = 30 + i % 2 * 10 + i % 5  # always a change from the last
        started = time.perf_counter()
        sub.client.publish(f"energy-gateway/{FIRST_SITE_ID}/set/backup_reserve", str(value), qos=1)
        while sub.states.get(topic, {}).get("backup_reserve_pct") != value:  # noqa: ASYNC110 - a paho thread sets it
            await asyncio.sleep(0.002)
        via_ha.append((time.perf_counter() - started) * 1000)
        value = 60 + i % 2 * 10 + i % 5
        started = time.perf_counter()
        await site.command("backup", {"backup_reserve_pct": value})
        direct.append((time.perf_counter() - started) * 1000)
    return via_ha, direct


@dataclass
class Mosquitto:
    """The bench's broker process and its port."""

    proc: asyncio.subprocess.Process
    port: int


async def start_mosquitto(directory: Path, *, broker_nodelay: bool) -> Mosquitto:
    """Mosquitto on a free loopback port; ``set_tcp_nodelay`` as asked (its default is off)."""
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"set_tcp_nodelay {'true' if broker_nodelay else 'false'}\n")
    proc = await asyncio.create_subprocess_exec(
        shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return Mosquitto(proc, port)


async def main(sites: int, seconds: float, state_interval_s: float, *, nodelay: bool,
               broker_nodelay: bool) -> None:
    print(f"machine: {machine()}")
    print(f"{sites} sites (one SunSpec device each, 1 s polls), {seconds:g} s per run, "
          f"bridge state_interval_s={state_interval_s:g}, mosquitto set_tcp_nodelay="
          f"{str(broker_nodelay).lower()}")
    with tempfile.TemporaryDirectory(prefix="bench-ha-") as tmp:
        tmpdir = Path(tmp)
        broker = await start_mosquitto(tmpdir, broker_nodelay=broker_nodelay)
        sub = Subscriber(broker.port, nodelay=nodelay)
        await asyncio.to_thread(sub.start)
        try:
            async with helper("bench._simproc", "--homes", str(sites),
                              log_path=tmpdir / "sim.log") as sim:
                endpoints = sim.hello["endpoints"]
                base = bench_config(endpoints, tmpdir / "data-off")
                off = await measure(base, seconds, None)
                on_config = bench_config(endpoints, tmpdir / "data-on").model_copy(update={
                    "mqtt_northbound": MqttNorthbound(host="127.0.0.1", port=broker.port,
                                                      state_interval_s=state_interval_s)})
                on = await measure(on_config, seconds, sub)
        finally:
            await asyncio.to_thread(sub.stop)
            broker.proc.terminate()
            await broker.proc.wait()
    print_table("Event loop and polling, bridge off (baseline) vs on",
                ["run", "loop lag p50 ms", "loop lag p99 ms", "polls/device/s"],
                [["bridge off", off["lag_p50"], off["lag_p99"], off["polls_per_s"]],
                 ["bridge on", on["lag_p50"], on["lag_p99"], on["polls_per_s"]],
                 ["on / off", on["lag_p99"] / max(off["lag_p99"], 1e-9),
                  "", on["polls_per_s"] / max(off["polls_per_s"], 1e-9)]])
    passes = on["passes"][1:]  # the first pass publishes discovery too
    print_table("Bridge traffic and publishing passes",
                ["sites", "messages/s", "KiB/s", "pass p50 ms", "pass p99 ms", "passes"],
                [[sites, on["msgs_per_s"], on["kib_per_s"], percentile(passes, 50),
                  percentile(passes, 99), len(passes)]])
    ha, direct = on["ha_ms"], on["direct_ms"]
    print_table("Backup reserve change: MQTT command to published state vs Site.command (ms)",
                ["path", "p50", "p90", "max", "n"],
                [["Home Assistant (MQTT)", percentile(ha, 50), percentile(ha, 90), max(ha), len(ha)],
                 ["Site.command (baseline)", percentile(direct, 50), percentile(direct, 90),
                  max(direct), len(direct)],
                 ["ratio p50", percentile(ha, 50) / max(percentile(direct, 50), 1e-9), "", "", ""]])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--state-interval-s", type=float, default=1.0)
    parser.add_argument("--broker-nodelay", action="store_true",
                        help="run mosquitto with set_tcp_nodelay true (its default is false)")
    parser.add_argument("--subscriber-nodelay", action="store_true",
                        help="TCP_NODELAY on the Home Assistant stand-in's socket too")
    args = parser.parse_args()
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise SystemExit("bench.ha_bridge needs the mosquitto binary")
    quiet_logging()
    asyncio.run(main(args.sites, args.seconds, args.state_interval_s,
                     nodelay=args.subscriber_nodelay, broker_nodelay=args.broker_nodelay))
