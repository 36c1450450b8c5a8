"""Home Assistant discovery (pure): command parsing, topics, payloads, counters, the login config."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import Capability
from drivers.mqtt_battery.options import MqttBatteryOptions
from drivers.mqtt_login import BrokerLoginOptions
from drivers.victron_gx.options import VictronGxOptions
from gateway.cli import UsageError, parse_host_port, with_northbound
from gateway.core.config import Config, MqttNorthbound
from gateway.core.errors import InvalidInput
from gateway.core.history import FlowEnergy
from gateway.core.homeassistant import (
    EnergyTotals,
    SiteShape,
    Topics,
    device_keys,
    discovery_payload,
    parse_command,
    parse_registry,
    registry_payload,
    state_payload,
)
from gateway.core.reading import SiteReading
from gateway.core.settings import SiteSettings

TOPICS = Topics("homeassistant", "energy-gateway")
ALL = frozenset(Capability)


@pytest.mark.parametrize(("control", "payload", "changes"), [
    ("backup_reserve", b"40", {"backup_reserve_pct": 40}),
    ("backup_reserve", b"40.0", {"backup_reserve_pct": 40}),  # how HA may render a whole number
    ("backup_reserve", b" 0 ", {"backup_reserve_pct": 0}),
    ("backup_reserve", b"100", {"backup_reserve_pct": 100}),
    ("operation_mode", b"autonomous", {"operation_mode": "autonomous"}),
    ("storm_mode", b"ON", {"storm_mode_enabled": True}),
    ("storm_mode", b"OFF", {"storm_mode_enabled": False}),
    ("grid_charging", b"OFF", {"grid_charging_allowed": False}),
    ("export_rule", b"never", {"export_rule": "never"}),
])
def test_commands_become_settings(control: str, payload: bytes, changes: dict[str, Any]) -> None:
    assert parse_command(control, payload) == changes


@pytest.mark.parametrize(("control", "payload", "why"), [
    ("backup_reserve", b"abc", "whole number"),
    ("backup_reserve", b"40.5", "step 1"),
    ("backup_reserve", b"101", "out of range"),
    ("backup_reserve", b"-1", "out of range"),
    ("backup_reserve", b"nan", "whole number"),
    ("backup_reserve", b"inf", "whole number"),
    ("backup_reserve", b"1e400", "whole number"),
    ("backup_reserve", b"", "whole number"),
    ("backup_reserve", b"9" * 65, "too long"),
    ("backup_reserve", b"\xff", "UTF-8"),
    ("operation_mode", b"turbo", "one of"),
    ("storm_mode", b"on", "ON or OFF"),
    ("storm_mode", b"1", "ON or OFF"),
    ("export_rule", b"", "one of"),
    ("reboot", b"1", "unknown control"),
])
def test_malformed_commands_are_refused_naming_the_control(
    control: str, payload: bytes, why: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_command(control, payload)
    assert why in caught.value.description
    assert caught.value.field == control


def test_topics() -> None:
    assert TOPICS.discovery(1001) == "homeassistant/device/energy_gateway_1001/config"
    assert TOPICS.command(1001, "storm_mode") == "energy-gateway/1001/set/storm_mode"
    assert TOPICS.parse_command("energy-gateway/1001/set/storm_mode") == ("1001", "storm_mode")
    assert TOPICS.parse_command("energy-gateway/1001/state") is None
    assert TOPICS.parse_command("other/1001/set/storm_mode") is None
    nested = Topics("ha", "home/gw")
    assert nested.parse_command("home/gw/7/set/x") == ("7", "x")
    assert nested.device_id(7) == "home_gw_7"


def test_discovery_lists_battery_entities_only_for_a_battery() -> None:
    pv = discovery_payload(SiteShape(2, "PV", ("pv",), frozenset({Capability.SOLAR})), TOPICS,
                           version="1")
    assert "battery_soc" not in pv["cmps"]
    assert "backup_reserve" not in pv["cmps"]
    assert {"solar_power", "grid_import_energy", "export_rule"} <= set(pv["cmps"])
    full = discovery_payload(SiteShape(1, "Home", ("inverter", "battery"), ALL), TOPICS, version="1")
    assert {"battery_soc", "backup_reserve", "operation_mode", "storm_mode", "grid_charging",
            "device_inverter_connectivity", "device_battery_connectivity"} <= set(full["cmps"])
    assert all(c["unique_id"].startswith("energy_gateway_1_") for c in full["cmps"].values())
    assert full["o"] == {"name": "energy-gateway", "sw_version": "1"}


def test_device_keys_stay_apart() -> None:
    assert device_keys(["Inverter 1", "inverter-1"]) == [
        ("device_inverter_1_connectivity", "Inverter 1"), ("device_1_connectivity", "inverter-1")]


def test_state_rounds_as_live_status_and_shows_unknowns_as_null() -> None:
    reading = SiteReading(taken_at=datetime(2026, 1, 1, tzinfo=UTC), solar_w=1000.4,
                          battery_w=-500.6, grid_w=10.5, load_w=510.3, soc_pct=55.556,
                          capacity_wh=10000, grid_up=True, storm_alert=False)
    state = state_payload(reading, storm_mode_active=False, settings=SiteSettings(),
                          devices_online=[True, False], energy=None)
    assert (state["solar_w"], state["battery_w"], state["grid_w"]) == (1000, -501, 10)
    assert state["load_w"] == 1000 - 501 + 10
    assert (state["soc_pct"], state["grid"], state["devices"]) == (55.56, "ON", ["ON", "OFF"])
    assert state["grid_import_kwh"] is None
    offline = state_payload(None, storm_mode_active=None, settings=SiteSettings(),
                            devices_online=[False], energy=None)
    assert offline["solar_w"] is None
    assert offline["storm_mode_active"] is None
    assert offline["backup_reserve_pct"] == 20


def test_energy_counters_from_the_flows_never_go_down() -> None:
    flows = FlowEnergy(solar_to_home=1000, solar_to_battery=2000, solar_to_grid=3000,
                       battery_to_home=400, battery_to_grid=100, grid_to_home=700,
                       grid_to_battery=300)
    totals = EnergyTotals.from_flows(flows)
    assert totals == EnergyTotals(grid_import_kwh=1.0, grid_export_kwh=3.1, solar_kwh=6.0,
                                  battery_charged_kwh=2.3, battery_discharged_kwh=0.5)
    lower = EnergyTotals.from_flows(FlowEnergy(grid_to_home=5000))
    assert lower.at_least(totals).grid_import_kwh == 5.0
    assert lower.at_least(totals).solar_kwh == 6.0


@pytest.mark.parametrize(("payload", "ids"), [
    (b"[1001, 1002]", [1001, 1002]), (b"", []), (b"{}", []), (b"not json", []),
    (b'[1, "2", true, -3, 4]', [1, 4]), (b"[" + b"1," * 40000 + b"1]", []),
])
def test_registry_is_read_defensively(payload: bytes, ids: list[int]) -> None:
    assert parse_registry(payload) == ids


def test_registry_roundtrip() -> None:
    assert parse_registry(registry_payload([1002, 1001])) == [1001, 1002]


# ---- configuration ---------------------------------------------------------------------------


def test_northbound_section_defaults_and_checks() -> None:
    nb = MqttNorthbound(host="127.0.0.1")
    assert (nb.port, nb.discovery_prefix, nb.base_topic) == (1883, "homeassistant", "energy-gateway")
    for bad in ({"base_topic": "a/#"}, {"base_topic": "/x"}, {"discovery_prefix": "ha/"},
                {"host": "999.1.1.1"}, {"port": 0}, {"password": "p"},
                {"tls": {"key_file": "k.pem"}}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            MqttNorthbound.model_validate({"host": "127.0.0.1", **bad})


@pytest.mark.parametrize("model", [VictronGxOptions, MqttBatteryOptions, MqttNorthbound])
def test_every_mqtt_client_takes_the_same_login(model: type[BrokerLoginOptions]) -> None:
    assert {"username", "password", "tls"} <= set(model.model_fields)


def test_the_password_stays_out_of_reprs_and_dumps(tmp_path: Path) -> None:
    nb = MqttNorthbound.model_validate({"host": "h", "username": "u", "password": "hunter2-x",
                                        "tls": {"ca_file": str(tmp_path / "ca.pem")}})
    login = nb.login()
    assert login.password == "hunter2-x"
    for text in (repr(nb), str(nb.model_dump()), nb.model_dump_json(), repr(login)):
        assert "hunter2-x" not in text
    assert login.tls is not None
    assert login.tls.verify is True  # verification is on unless switched off


def test_demo_flag_adds_or_overrides_the_section() -> None:
    config = Config.model_validate({"sites": [{
        "energy_site_id": 1, "name": "x", "time_zone": "UTC",
        "devices": [{"name": "d", "type": "sunspec", "options": {"host": "127.0.0.1"}}]}]})
    assert config.mqtt_northbound is None
    added = with_northbound(config, "127.0.0.1:18831")
    assert added.mqtt_northbound is not None
    assert (added.mqtt_northbound.host, added.mqtt_northbound.port) == ("127.0.0.1", 18831)
    kept = with_northbound(added.model_copy(update={"mqtt_northbound": MqttNorthbound(
        host="h", base_topic="mine")}), "[::1]:1884")
    assert kept.mqtt_northbound is not None
    assert (kept.mqtt_northbound.host, kept.mqtt_northbound.port,
            kept.mqtt_northbound.base_topic) == ("::1", 1884, "mine")
    assert parse_host_port("localhost:1883", "--x") == ("localhost", 1883)
    for bad in ("1883", "host:", "host:0", "host:99999", ":1883"):
        with pytest.raises(UsageError):
            parse_host_port(bad, "--mqtt-northbound")


def test_login_problems_name_unreadable_files_and_weak_settings(tmp_path: Path) -> None:
    from gateway.core.config.northbound import login_problems

    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config = Config.model_validate({
        "sites": [{"energy_site_id": 1, "name": "x", "time_zone": "UTC", "devices": [
            {"name": "gx", "type": "victron_gx", "options": {
                "host": "192.0.2.10", "username": "u", "password": "p"}},
            {"name": "gx2", "type": "victron_gx", "options": {
                "host": "127.0.0.1", "username": "u", "password": "p",
                "tls": {"ca_file": str(tmp_path / "missing.pem"), "verify": False}}}],
            "planner": {"price_feed_mqtt": {"host": "192.0.2.20", "topic": "prices/de",
                                            "username": "u", "password": "p"}}}],
        "mqtt_northbound": {"host": "127.0.0.1", "tls": {"ca_file": str(ca)}},
    })
    found = {(p.loc, p.severity) for p in login_problems(config, Path.is_file)}
    assert found == {
        (("sites", 0, "devices", 0, "options", "password"), "warning"),
        (("sites", 0, "devices", 1, "options", "tls", "ca_file"), "error"),
        (("sites", 0, "devices", 1, "options", "tls", "verify"), "warning"),
        (("sites", 0, "planner", "price_feed_mqtt", "password"), "warning"),
    }


def test_the_starter_configs_northbound_block_is_valid_once_uncommented() -> None:
    import yaml

    from gateway.core.config.starter import STARTER

    block = STARTER[STARTER.index("# mqtt_northbound:"):]
    lines = [line[2:] for line in block.splitlines() if not line.startswith("#   #")]
    section = yaml.safe_load("\n".join(lines))["mqtt_northbound"]
    nb = MqttNorthbound.model_validate(section)
    assert (nb.host, nb.username) == ("127.0.0.1", "energy-gateway")
