"""`energy-gateway demo --mqtt-northbound HOST:PORT`: every demo site appears on that broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import free_ports
from tests.integration.brokers import mosquitto_path
from tests.integration.test_cli_demo import _demo_config


@pytest.mark.skipif(mosquitto_path() is None, reason="needs the mosquitto binary")
def test_demo_publishes_every_site_for_home_assistant(tmp_path: Path) -> None:
    config = _demo_config(tmp_path)
    (port,) = free_ports(1)
    broker = subprocess.Popen([str(mosquitto_path()), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[str, bytes] = {}
    lock = threading.Lock()

    def on_message(_c: Client, _u: object, msg: MQTTMessage) -> None:
        with lock:
            seen[msg.topic] = bytes(msg.payload)

    ha = Client(CallbackAPIVersion.VERSION2, client_id="demo-test-ha")
    ha.on_message = on_message
    demo = None
    try:
        deadline = time.monotonic() + 10
        while True:  # the broker takes a moment to listen
            try:
                ha.connect("127.0.0.1", port)
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)
        ha.loop_start()
        ha.subscribe([("homeassistant/device/+/config", 1), ("energy-gateway/status", 1)])
        demo = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--log-format", "json", "demo", "--config",
             str(config), "--mqtt-northbound", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp_path)
        wanted = {f"homeassistant/device/energy_gateway_{i}/config" for i in (1001, 1002, 1003)}
        deadline = time.monotonic() + 30
        while not wanted <= set(seen):
            assert demo.poll() is None, "the demo exited"
            assert time.monotonic() < deadline, f"discovery seen for {sorted(seen)}"
            time.sleep(0.1)
        assert seen["energy-gateway/status"] == b"online"
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=20) == 0
        deadline = time.monotonic() + 10
        while seen.get("energy-gateway/status") != b"offline":  # a clean stop says so itself
            assert time.monotonic() < deadline
            time.sleep(0.05)
        banner = demo.stdout.read().decode() if demo.stdout else ""
        assert f"mqtt://127.0.0.1:{port}" in banner
    finally:
        if demo is not None and demo.poll() is None:
            demo.kill()
            demo.wait()
        if demo is not None and demo.stdout:
            demo.stdout.close()
        ha.loop_stop()
        ha.disconnect()
        broker.terminate()
        broker.wait(timeout=10)
