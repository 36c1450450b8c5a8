"""Home Assistant MQTT discovery against a real broker, with paho-mqtt playing Home Assistant.

Commands are checked on the simulator's truth; the published state against live_status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from gateway.core.config import Config, MqttNorthbound
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig
from tests.ha_client import HaClient, Received
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.brokers import BrokerKind, RunningBroker, free_port, mosquitto_path, mqtt_broker
from tests.integration.conftest import GatewayFactory, RunningGateway

DISCOVERY = f"homeassistant/device/energy_gateway_{SITE_ID}/config"
STATE = f"energy-gateway/{SITE_ID}/state"
# What Home Assistant's schemas require of each platform used here (besides p and unique_id):
# homeassistant/components/mqtt/{sensor,binary_sensor,number,select,switch}.py
REQUIRED = {
    "sensor": ("state_topic",), "binary_sensor": ("state_topic",),
    "number": ("command_topic", "min", "max", "step"), "select": ("command_topic", "options"),
    "switch": ("command_topic",),
}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    """Site 1001's twin with a frozen clock: the power flows hold still, so values compare exactly."""
    config = SimulatorConfig(
        control=ControlConfig(port=0), tick_s=0.05, clock_speed=0,
        homes=[HomeConfig(id="home-1001", initial_soc_pct=60, devices=[
            SimDeviceConfig(id="inverter", kind="sunspec", port=0, serial_number="SIM1001")])],
    )
    async with Simulator(config) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def broker() -> AsyncIterator[RunningBroker]:
    async with mqtt_broker() as running:
        yield running


def with_bridge(config: Config, host: str, port: int, **extra: Any) -> Config:
    section = MqttNorthbound(host=host, port=port, state_interval_s=0.1, energy_interval_s=0.2,
                             timeout_s=1.0, backoff_max_s=0.2, **extra)
    return config.model_copy(update={"mqtt_northbound": section})


async def live_status(gateway: RunningGateway) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(
            f"{gateway.url}/api/1/energy_sites/{SITE_ID}/live_status",
            headers={"Authorization": f"Bearer {token()}"}) as resp:
        assert resp.status == 200
        body: dict[str, Any] = (await resp.json())["response"]
        return body


def state(ha: HaClient) -> dict[str, Any] | None:
    last = ha.last(STATE)
    return None if last is None or not last.payload else dict(last.json())


async def message(ha: HaClient, topic: str,
                  until: Callable[[Received], object] = lambda _: True) -> Received:
    """The newest message on ``topic`` once one satisfies ``until``."""
    def probe() -> Received | None:
        return ha.last(topic)

    found = await eventually(probe, lambda m: m is not None and until(m))
    assert found is not None
    return found


async def published(ha: HaClient,
                    until: Callable[[dict[str, Any]], object] = lambda _: True) -> dict[str, Any]:
    """The newest state of the site once it satisfies ``until``."""
    def probe() -> dict[str, Any] | None:
        return state(ha)

    found = await eventually(probe, lambda s: s is not None and until(s))
    assert found is not None
    return found


def check_discovery(payload: dict[str, Any]) -> None:
    """Every field Home Assistant's device discovery schema requires (homeassistant/components/
    mqtt/schemas.py DEVICE_DISCOVERY_SCHEMA, and each platform's own)."""
    assert payload["dev"]["identifiers"] == [f"energy_gateway_{SITE_ID}"]
    assert payload["dev"]["name"] == "Test Home"
    assert payload["o"]["name"] == "energy-gateway"
    assert payload["state_topic"] == STATE
    assert {a["topic"] for a in payload["availability"]} == {
        "energy-gateway/status", f"energy-gateway/{SITE_ID}/availability"}
    unique_ids = [c["unique_id"] for c in payload["cmps"].values()]
    assert len(set(unique_ids)) == len(unique_ids)
    for key, component in payload["cmps"].items():
        platform = component["p"]
        effective = {"state_topic": payload["state_topic"], **component}
        for required in REQUIRED[platform]:
            assert required in effective, (key, required)
        assert component["name"]
    cmps = payload["cmps"]
    for key in ("solar_power", "battery_power", "grid_power", "load_power"):
        assert (cmps[key]["device_class"], cmps[key]["state_class"],
                cmps[key]["unit_of_measurement"]) == ("power", "measurement", "W")
    for key in ("grid_import_energy", "grid_export_energy", "solar_energy",
                "battery_charged_energy", "battery_discharged_energy"):
        assert (cmps[key]["device_class"], cmps[key]["state_class"],
                cmps[key]["unit_of_measurement"]) == ("energy", "total_increasing", "kWh")
    assert cmps["battery_soc"]["device_class"] == "battery"
    assert (cmps["backup_reserve"]["p"], cmps["backup_reserve"]["min"], cmps["backup_reserve"]["max"],
            cmps["backup_reserve"]["step"]) == ("number", 0, 100, 1)
    assert cmps["operation_mode"]["options"] == ["self_consumption", "autonomous", "backup"]
    assert cmps["export_rule"]["options"] == ["battery_ok", "pv_only", "never"]
    assert (cmps["storm_mode"]["p"], cmps["grid_charging"]["p"]) == ("switch", "switch")
    assert cmps["grid_status"]["p"] == "binary_sensor"
    assert cmps["device_inverter_connectivity"]["device_class"] == "connectivity"


async def test_discovery_state_and_a_reserve_command(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path
) -> None:
    host, port = broker
    config = with_bridge(gateway_config(sim, tmp_path / "data"), host, port)
    home = sim.homes["home-1001"]
    async with HaClient(host, port) as ha, start_gateway(config) as gateway:
        found = await message(ha, DISCOVERY)
        assert found.retain or len(ha.on(DISCOVERY)) == 1
        check_discovery(found.json())
        # one device per site: nothing else under the discovery prefix
        assert {m.topic for m in ha.messages if m.topic.startswith("homeassistant/device/")} \
            == {DISCOVERY}
        await message(ha, "energy-gateway/status", lambda m: m.payload == b"online")
        await message(ha, f"energy-gateway/{SITE_ID}/availability", lambda m: m.payload == b"online")

        # state values are live_status's (the clock is frozen: the flows hold still)
        live = await live_status(gateway)
        now = await published(ha, lambda s: s["solar_w"] == live["solar_power"]
                              and s["battery_w"] == live["battery_power"])
        assert (now["grid_w"], now["load_w"]) == (live["grid_power"], live["load_power"])
        assert now["soc_pct"] == pytest.approx(live["percentage_charged"], abs=0.01)
        assert now["grid"] == ("ON" if live["grid_status"] == "Active" else "OFF")
        assert now["storm_mode_active"] == ("ON" if live["storm_mode_active"] else "OFF")
        assert now["devices"] == ["ON"]
        assert now["backup_reserve_pct"] == home.truth().reserve_pct == 20
        assert (now["operation_mode"], now["export_rule"]) == ("self_consumption", "pv_only")
        assert (now["storm_mode"], now["grid_charging"]) == ("ON", "ON")
        energy = await published(ha, lambda s: s["grid_import_kwh"] is not None)
        assert all(energy[k] >= 0 for k in ("grid_import_kwh", "grid_export_kwh", "solar_kwh",
                                            "battery_charged_kwh", "battery_discharged_kwh"))

        # the number entity as Home Assistant sends it: the device's reserve changes
        ha.publish(f"energy-gateway/{SITE_ID}/set/backup_reserve", "37")
        await eventually(lambda: home.truth().reserve_pct == 37)
        await published(ha, lambda s: s["backup_reserve_pct"] == 37)
        assert gateway.site.settings.backup_reserve_pct == 37

        # a select and a switch, through the same pipeline
        ha.publish(f"energy-gateway/{SITE_ID}/set/storm_mode", "OFF")
        ha.publish(f"energy-gateway/{SITE_ID}/set/operation_mode", "backup")
        await eventually(lambda: home.truth().reserve_pct == 100)  # backup keeps the battery full
        await published(ha, lambda s: s["storm_mode"] == "OFF" and s["operation_mode"] == "backup")


@pytest.mark.parametrize(("control", "payload"), [
    ("backup_reserve", "abc"), ("backup_reserve", "101"), ("backup_reserve", "-1"),
    ("backup_reserve", "40.5"), ("backup_reserve", "true"), ("operation_mode", "turbo"),
    ("storm_mode", "on"), ("export_rule", ""), ("nonsense", "1"),
])
async def test_a_malformed_command_is_refused_logged_and_writes_nothing(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path,
    control: str, payload: str,
) -> None:
    host, port = broker
    config = with_bridge(gateway_config(sim, tmp_path / "data"), host, port)
    home = sim.homes["home-1001"]
    async with HaClient(host, port) as ha, start_gateway(config) as gateway:
        await published(ha)
        with capture_logs() as events:
            ha.publish(f"energy-gateway/{SITE_ID}/set/{control}", payload)
            refused = await eventually(lambda: [e for e in events
                                                if e["event"] == "ha.command_refused"])
        assert control[:10] in refused[0].get("control", "") or "unknown" in refused[0]["reason"]
        assert gateway.site.settings.backup_reserve_pct == 20
        assert home.truth().reserve_pct == 20
        # nothing reached the pipeline: no journal entry, no device write
        assert not [e for e in events if e["event"].startswith("command.")]


async def test_a_rejected_command_republishes_the_unchanged_state(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path
) -> None:
    host, port = broker
    config = with_bridge(gateway_config(sim, tmp_path / "data"), host, port)
    home = sim.homes["home-1001"]
    async with HaClient(host, port) as ha, start_gateway(config) as gateway:
        await published(ha)
        await home.device("inverter").apply_faults(exception_code=4)  # the device refuses
        with capture_logs() as events:
            ha.publish(f"energy-gateway/{SITE_ID}/set/backup_reserve", "53")
            failed = await eventually(lambda: [e for e in events
                                               if e["event"] == "ha.command_failed"])
        assert failed[0]["outcome"] == "rejected"
        assert "nothing was changed" in failed[0]["detail"]
        await home.device("inverter").apply_faults(exception_code=None)
        ha.clear()
        republished = await published(ha)
        assert republished["backup_reserve_pct"] == 20
        assert home.truth().reserve_pct == 20
        assert gateway.site.settings.backup_reserve_pct == 20


async def test_a_site_that_left_the_config_is_removed(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path
) -> None:
    host, port = broker
    gone = "homeassistant/device/energy_gateway_1009/config"
    async with HaClient(host, port) as ha:
        # what an earlier run with a site 1009 left on the broker
        ha.publish(gone, b'{"dev": {"identifiers": ["energy_gateway_1009"]}}', retain=True)
        ha.publish("energy-gateway/1009/state", b"{}", retain=True)
        ha.publish("energy-gateway/sites", b"[1001, 1009]", retain=True)
        await message(ha, "energy-gateway/sites")
        config = with_bridge(gateway_config(sim, tmp_path / "data"), host, port)
        async with start_gateway(config):
            await message(ha, gone, lambda m: m.payload == b"")
            await message(ha, "energy-gateway/1009/state", lambda m: m.payload == b"")
            await message(ha, "energy-gateway/sites", lambda m: m.json() == [SITE_ID])
            await message(ha, DISCOVERY)
    # a client arriving now finds only the configured site's retained discovery
    async with HaClient(host, port, filters=("homeassistant/device/+/config",)) as late:
        await message(late, DISCOVERY)
        assert late.last(gone) is None


async def test_home_assistant_birth_gets_everything_again(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path
) -> None:
    host, port = broker
    config = with_bridge(gateway_config(sim, tmp_path / "data"), host, port)
    async with HaClient(host, port) as ha, start_gateway(config):
        await message(ha, DISCOVERY)
        await published(ha)
        count = len(ha.on(DISCOVERY))
        ha.publish("homeassistant/status", "online")
        await eventually(lambda: len(ha.on(DISCOVERY)) > count)
        await message(ha, "energy-gateway/status", lambda m: m.payload == b"online")


async def test_a_stop_says_offline_and_a_crash_leaves_the_last_will(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path
) -> None:
    host, port = broker
    config = with_bridge(gateway_config(sim, tmp_path / "data"), host, port)
    async with HaClient(host, port) as ha:
        async with start_gateway(config):
            await message(ha, "energy-gateway/status", lambda m: m.payload == b"online")
        await message(ha, "energy-gateway/status", lambda m: m.payload == b"offline")


async def test_an_unreachable_broker_blocks_neither_the_api_nor_polling(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    config = with_bridge(gateway_config(sim, tmp_path / "data"), "127.0.0.1", port)
    kind: BrokerKind = "mosquitto" if mosquitto_path() else "amqtt"
    async with start_gateway(config) as gateway:  # waits for the site online and applied
        polls = gateway.site.devices[0].polls
        body = await live_status(gateway)
        assert body["grid_status"] == "Active"
        await eventually(lambda: gateway.site.devices[0].polls > polls + 3)
        # the broker comes up: the bridge's backoff finds it and publishes
        broker = RunningBroker(kind, port)
        await broker.start()
        try:
            async with HaClient("127.0.0.1", port) as ha:
                await message(ha, DISCOVERY)
                await published(ha)
        finally:
            await broker.stop()
        await live_status(gateway)


async def test_an_unconfirmed_command_shows_only_once_the_device_confirms_it(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path
) -> None:
    host, port = broker
    config = with_bridge(gateway_config(sim, tmp_path / "data", command_timeout_s=1.0), host, port)
    home = sim.homes["home-1001"]
    device = home.device("inverter")
    async with HaClient(host, port) as ha, start_gateway(config) as gateway:
        await published(ha)
        await device.apply_faults(ignore_writes=True)  # acknowledged, never applied
        with capture_logs() as events:
            ha.publish(f"energy-gateway/{SITE_ID}/set/backup_reserve", "44")
            failed = await eventually(lambda: [e for e in events
                                               if e["event"] == "ha.command_failed"])
        assert failed[0]["outcome"] == "kept"
        assert gateway.site.settings.backup_reserve_pct == 44  # kept, to apply later
        ha.clear()
        assert (await published(ha))["backup_reserve_pct"] == 20  # not confirmed: not shown
        await device.apply_faults(ignore_writes=False)
        await eventually(lambda: home.truth().reserve_pct == 44)  # reconciliation applies it
        await published(ha, lambda s: s["backup_reserve_pct"] == 44)


async def test_commands_for_unknown_sites_or_retained_are_refused(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path
) -> None:
    host, port = broker
    config = with_bridge(gateway_config(sim, tmp_path / "data"), host, port)
    command = f"energy-gateway/{SITE_ID}/set/backup_reserve"
    async with HaClient(host, port) as ha:
        # a command someone published retained: the bridge gets it replayed when it subscribes
        ha.publish(command, "30", retain=True)
        await message(ha, command)
        with capture_logs() as events:
            async with start_gateway(config) as gateway:
                await published(ha)
                ha.publish("energy-gateway/1002/set/backup_reserve", "30")
                ha.publish(f"energy-gateway/{'9' * 5000}/set/backup_reserve", "30")
                refused = await eventually(lambda: [e for e in events
                                                    if e["event"] == "ha.command_refused"],
                                           lambda found: len(found) == 3)
                assert gateway.site.settings.backup_reserve_pct == 20
        ha.publish(command, b"", retain=True)  # clean up
    assert sorted(e["reason"].split(" ")[0] for e in refused) == ["retained", "unknown", "unknown"]
    assert not [e for e in events if e["event"] == "mqtt.handler_failed"]


async def test_energy_counters_grow_and_survive_a_restart(
    start_gateway: GatewayFactory, sim: Simulator, broker: RunningBroker, tmp_path: Path
) -> None:
    host, port = broker
    config = with_bridge(gateway_config(sim, tmp_path / "data"), host, port)
    keys = ("grid_import_kwh", "grid_export_kwh", "solar_kwh", "battery_charged_kwh",
            "battery_discharged_kwh")

    def total(s: dict[str, Any]) -> float:
        return sum(s[k] or 0.0 for k in keys)

    # a heavy house load (kW through battery and grid), so the counters move by their 1 Wh
    # resolution within a second of real time, not after ~12 s of 300 W of sun on a slow machine
    sim.homes["home-1001"].set_load_scale(30)
    async with HaClient(host, port) as ha:
        async with start_gateway(config):
            first = await published(ha, lambda s: total(s) > 0)
            later = await published(ha, lambda s: total(s) > total(first))
        assert all(later[k] >= first[k] for k in keys)
        ha.clear()
        async with start_gateway(config):  # the same storage: the history goes on
            again = await published(ha, lambda s: s["grid_import_kwh"] is not None)
        assert all(again[k] >= later[k] for k in keys)


async def test_sandbox_sites_stay_out_of_home_assistant(broker: RunningBroker, tmp_path: Path) -> None:
    from gateway.runtime.gateway import Gateway
    from tests.integration.test_sandbox import LIVE_SITE, SANDBOX_SITE, sandbox_config

    host, port = broker
    homes = [HomeConfig(id=f"home-{kind}", initial_soc_pct=60, devices=[
        SimDeviceConfig(id="inverter", kind="sunspec", port=0)]) for kind in ("live", "sandbox")]
    async with Simulator(SimulatorConfig(control=ControlConfig(port=0), tick_s=0.05,
                                         homes=homes)) as two:
        config = with_bridge(sandbox_config(two, tmp_path / "data"), host, port)
        async with HaClient(host, port) as ha, Gateway(config):
            await message(ha, "energy-gateway/sites", lambda m: m.json() == [LIVE_SITE])
            await message(ha, f"homeassistant/device/energy_gateway_{LIVE_SITE}/config")
            await message(ha, f"energy-gateway/{LIVE_SITE}/state")
        assert not [m for m in ha.messages if str(SANDBOX_SITE) in m.topic]
