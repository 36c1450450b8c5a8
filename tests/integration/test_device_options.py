"""A device's driver options reach its driver as loaded; the device's own keys stay the gateway's."""

from __future__ import annotations

from pathlib import Path

import aiomqtt

from drivers.mqtt_battery.driver import MqttBatteryDriver
from gateway.core.config import parse_config
from gateway.runtime.devices import DeviceState
from gateway.runtime.gateway import Gateway
from tests.helpers import SECRET, eventually
from tests.integration.brokers import mqtt_broker


def _config(data_dir: Path, broker_port: int) -> str:
    return f"""\
gateway:
  port: 0
  data_dir: {data_dir}
  jwt_secret: {SECRET}
sites:
  - energy_site_id: 1003
    name: Mixed Home
    time_zone: Europe/Berlin
    devices:
      - name: battery
        type: mqtt_battery
        poll_interval_s: 0.1
        stale_after_s: 30          # the gateway serves the last reading for 30 s
        options:
          host: 127.0.0.1
          port: {broker_port}
          stale_after_s: 0.5       # the driver: a point unreported for 0.5 s fails the read
          connect_timeout_s: 5
          points:
            soc_pct: {{state_topic: bat/state, value_path: soc}}
            battery_w: {{state_topic: bat/state, value_path: power}}
"""


async def test_the_mqtt_batterys_own_stale_after_s_reaches_it_apart_from_the_gateways(
        tmp_path: Path) -> None:
    # The review's defect: a device's stale_after_s was taken by the gateway and never reached
    # the MQTT battery driver, whose own stale_after_s could not be set at all.
    async with mqtt_broker() as broker:
        config = parse_config(_config(tmp_path / "data", broker.port))
        configured = config.sites[0].devices[0]
        async with Gateway(config) as gw, aiomqtt.Client("127.0.0.1", broker.port) as device:
            state = gw.sites[1003].devices[0]
            assert isinstance(state, DeviceState)
            assert isinstance(state.driver, MqttBatteryDriver)
            assert state.driver.options is configured.options  # validated once, at load
            assert state.driver.options.stale_after_s == 0.5
            assert state.stale_limit_s == 30

            async def answering() -> bool:  # the battery publishes until the gateway has it
                await device.publish("bat/state", b'{"soc": 55, "power": 0}')
                return state.connected and state.telemetry is not None

            await eventually(answering, timeout=10, interval=0.1)
            # then it falls silent: the driver's 0.5 s (not the gateway's 30 s) fails its reads
            await eventually(lambda: "soc_pct stale" in (state.last_error or ""), timeout=10)
            assert state.telemetry is not None  # the gateway still holds the last reading
