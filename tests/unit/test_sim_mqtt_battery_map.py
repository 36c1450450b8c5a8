"""Table tests of the pure MQTT battery map: state JSON and set/* commands."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from simulator.config import HomeConfig, MqttBatteryConfig
from simulator.devices import mqtt_battery_map as mb
from simulator.physics import FirmwareSettings, HomePhysics, with_export_limit_w

BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2024, 6, 21, 13, 0, tzinfo=BERLIN)
HOME = HomeConfig(
    id="home-1", inverter_max_w=8000,
    devices=[MqttBatteryConfig(id="battery", kind="mqtt_battery", broker_port=1883)],
)  # fmt: skip
FW = FirmwareSettings(max_charge_w=5000)


def test_topics() -> None:
    assert mb.availability_topic("sim/b1") == "sim/b1/availability"
    assert mb.state_topic("sim/b1") == "sim/b1/state"
    assert mb.command_filter("sim/b1") == "sim/b1/set/+"


def test_state_document_signs_and_settings() -> None:
    phys = HomePhysics(HOME, NOON, BERLIN, firmware=with_export_limit_w(FW, 1500, 8000))
    t = replace(phys.truth(), battery_w=-1234.56, soc_pct=61.23)
    doc = json.loads(mb.encode_state(t))
    assert doc == {
        "soc": 61.2,
        "power": -1234.6,  # + discharging, as the home's battery_w
        "reserve": 20.0,
        "grid_charging": False,
        "export_limit": 1500.0,
    }
    unlimited = replace(t, export_limit_w=None, grid_charging=True)
    assert mb.state_document(unlimited)["export_limit"] is None
    assert mb.state_document(unlimited)["grid_charging"] is True


@pytest.mark.parametrize(
    ("command", "payload", "field", "value"),
    [
        ("reserve", b"35", "reserve_pct", 35.0),
        ("reserve", b"0", "reserve_pct", 0.0),
        ("reserve", b"100.0", "reserve_pct", 100.0),
        ("grid_charging", b"true", "grid_charging", True),
        ("grid_charging", b"false", "grid_charging", False),
        ("export_limit", b"0", "export_limit_pct", 0.0),
        ("export_limit", b"2000", "export_limit_pct", 25.0),
        ("export_limit", b"null", "export_limit_enabled", False),
    ],
)
def test_valid_commands(command: str, payload: bytes, field: str, value: object) -> None:
    fw = mb.apply_command(replace(FW, grid_charging=not value), command, payload, inverter_max_w=8000)
    assert isinstance(fw, FirmwareSettings)
    assert getattr(fw, field) == value
    if command == "export_limit" and payload != b"null":
        assert fw.export_limit_enabled


@pytest.mark.parametrize(
    ("command", "payload"),
    [
        ("reserve", b"101"),
        ("reserve", b"-1"),
        ("reserve", b'"20"'),
        ("reserve", b"true"),
        ("reserve", b"null"),
        ("reserve", b""),
        ("grid_charging", b"1"),
        ("grid_charging", b'"true"'),
        ("export_limit", b"-5"),
        ("export_limit", b"1e9"),
        ("export_limit", b"false"),
        ("mode", b"1"),
    ],
)
def test_invalid_commands_are_ignored(command: str, payload: bytes) -> None:
    assert isinstance(mb.apply_command(FW, command, payload, inverter_max_w=8000), mb.CommandIgnored)


def test_export_limit_round_trips_in_watts() -> None:
    fw = mb.apply_command(FW, "export_limit", b"12000", inverter_max_w=8000)  # above the rating
    assert isinstance(fw, FirmwareSettings)
    phys = HomePhysics(HOME, NOON, BERLIN, firmware=fw)
    assert phys.truth().export_limit_w == pytest.approx(12000)
