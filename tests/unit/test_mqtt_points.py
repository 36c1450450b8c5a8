"""Table tests of the generic MQTT point helpers, topic matching and option validation (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from paho.mqtt.client import topic_matches_sub
from pydantic import ValidationError

from drivers.base import Capability
from drivers.mqtt_battery.options import MqttBatteryOptions, capabilities_of
from drivers.mqtt_battery.points import (
    MISSING,
    decode_bool,
    decode_number,
    expand_topic,
    extract,
    from_gateway,
    json_literal,
    render_payload,
    same_point_value,
)
from drivers.topics import valid_filter, valid_topic
from drivers.transport.mqtt import LatestValues


@pytest.mark.parametrize(("flt", "topic", "match"), [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/+", "a/b", True),
    ("a/+", "a/b/c", False),
    ("a/+/c", "a/b/c", True),
    ("a/#", "a/b/c", True),
    ("a/#", "a", True),  # "#" also matches the parent level
    ("#", "a/b", True),
    ("+/+", "/x", True),  # an empty first level is a level
    ("#", "$SYS/broker", False),  # wildcards never match $-topics at the first level
    ("+/broker", "$SYS/broker", False),
    ("$SYS/#", "$SYS/broker", True),
    ("N/+/system/0/Serial", "N/c0619ab1f00d/system/0/Serial", True),
    ("N/+/system/0/Serial", "N/c0619ab1f00d/system/0/Dc/Pv/Power", False),
])  # fmt: skip
def test_topic_matches(flt: str, topic: str, match: bool) -> None:
    # The broker routes with paho's matcher; these rows pin the MQTT 3.1.1 rules it relies on.
    assert topic_matches_sub(flt, topic) is match


@pytest.mark.parametrize(("flt", "valid"), [
    ("a/b", True), ("a/+/c", True), ("#", True), ("a/#", True), ("", False), ("a/#/b", False),
    ("a/b#", False), ("a+/b", False), ("a\0b", False),
])  # fmt: skip
def test_valid_filter(flt: str, valid: bool) -> None:
    assert valid_filter(flt) is valid


@pytest.mark.parametrize(("topic", "valid"), [("a/b", True), ("", False), ("a/+", False), ("a/#", False)])
def test_valid_topic(topic: str, valid: bool) -> None:
    assert valid_topic(topic) is valid


@pytest.mark.parametrize(("template", "base", "topic"), [
    ("{base}/state", "sim/battery1", "sim/battery1/state"),
    ("{base}/state", "sim/battery1/", "sim/battery1/state"),
    ("fixed/topic", None, "fixed/topic"),
])  # fmt: skip
def test_expand_topic(template: str, base: str | None, topic: str) -> None:
    assert expand_topic(template, base) == topic


def test_expand_topic_needs_a_base() -> None:
    with pytest.raises(ValueError, match="base_topic"):
        expand_topic("{base}/state", None)


STATE = (b'{"soc": 61.2, "power": -1200.0, "grid_charging": false, "export_limit": null,'
         b' "cells": [3.3, 3.4], "data": {"battery": {"power": 5}}}')  # fmt: skip


@pytest.mark.parametrize(("payload", "path", "raw"), [
    (STATE, "soc", 61.2),
    (STATE, "power", -1200.0),
    (STATE, "grid_charging", False),
    (STATE, "export_limit", None),
    (STATE, "data.battery.power", 5),
    (STATE, "cells.1", 3.4),
    (STATE, "cells.2", MISSING),
    (STATE, "reserve", MISSING),
    (STATE, "soc.x", MISSING),
    (b"61.2", None, 61.2),
    (b" 1200 ", None, 1200),
    (b"ON", None, "ON"),
    (b"600W", None, "600W"),
    (b"", None, ""),
    (b"\xff", None, MISSING),
    (b"not json", "soc", MISSING),
])  # fmt: skip
def test_extract(payload: bytes, path: str | None, raw: Any) -> None:
    assert extract(payload, path) == raw


@pytest.mark.parametrize(("raw", "scale", "invert", "value"), [
    (61.2, 1.0, False, 61.2),
    (1.5, 1000.0, False, 1500.0),  # kW -> W
    (1500, 1.0, True, -1500.0),  # + charging on the device -> - charging in the gateway
    ("12.5", 1.0, False, 12.5),
    (None, 1.0, False, None),
    ("", 1.0, False, None),
    ("12.5W", 1.0, False, MISSING),
    (True, 1.0, False, MISSING),
    (float("nan"), 1.0, False, MISSING),
    ([1], 1.0, False, MISSING),
])  # fmt: skip
def test_decode_number(raw: Any, scale: float, invert: bool, value: Any) -> None:
    assert decode_number(raw, scale=scale, invert_sign=invert) == value


@pytest.mark.parametrize(("raw", "value"), [
    (True, True), (False, False), (1, True), (0, False), ("ON", True), ("off", False), ("true", True),
    ("Disabled", False), (2, MISSING), ("maybe", MISSING), (None, MISSING),
])  # fmt: skip
def test_decode_bool(raw: Any, value: Any) -> None:
    assert decode_bool(raw) == value


@pytest.mark.parametrize(("value", "scale", "invert", "device"), [
    (1500.0, 1000.0, False, 1.5), (1500.0, 1.0, True, -1500.0), (None, 1000.0, True, None),
    (True, 2.0, True, True),
])  # fmt: skip
def test_from_gateway_inverts_decoding(value: Any, scale: float, invert: bool, device: Any) -> None:
    assert from_gateway(value, scale=scale, invert_sign=invert) == device
    if isinstance(value, float):
        assert decode_number(device, scale=scale, invert_sign=invert) == pytest.approx(value)


@pytest.mark.parametrize(("value", "literal"), [
    (20.0, "20"), (2.5, "2.5"), (-1.0, "-1"), (True, "true"), (False, "false"), (None, "null"),
    (0.1 + 0.2, "0.3"),
])  # fmt: skip
def test_json_literal(value: Any, literal: str) -> None:
    assert json_literal(value) == literal


@pytest.mark.parametrize(("template", "value", "payload"), [
    ("{value}", 40.0, b"40"),
    ('{"value": {value}}', 40.0, b'{"value": 40}'),
    ("{value}W", 600.0, b"600W"),
    ('{"enabled": {value}, "src": "gw"}', True, b'{"enabled": true, "src": "gw"}'),
    ("{value}", None, b"null"),
])  # fmt: skip
def test_render_payload(template: str, value: Any, payload: bytes) -> None:
    assert render_payload(template, value) == payload


@pytest.mark.parametrize(("expected", "actual", "same"), [
    (40.0, 40.0, True), (40.0, 40.4, True), (40.0, 41.0, False), (True, True, True), (True, 1.0, False),
    (None, None, True), (None, 0.0, False), (0.0, None, False), (40.0, MISSING, False),
])  # fmt: skip
def test_same_point_value(expected: Any, actual: Any, same: bool) -> None:
    assert same_point_value(expected, actual, tolerance=0.5) is same


def test_latest_values_keep_order_and_age() -> None:
    store: LatestValues[str, float | None] = LatestValues()
    assert (store.seq, store.last_at, store.get("soc")) == (0, None, None)
    store.put("soc", 50.0, now=10.0)
    store.put("power", None, now=11.0)
    store.put("soc", 51.0, now=12.0)
    sample = store.get("soc")
    assert sample is not None
    assert (sample.value, sample.at, sample.seq) == (51.0, 12.0, 3)
    store.touch(now=13.0)
    assert (store.last_at, store.seq) == (13.0, 3)
    assert store.snapshot() == {"soc": 51.0, "power": None}


SIM_BATTERY: dict[str, Any] = {
    "host": "127.0.0.1", "base_topic": "sim/battery1", "availability_topic": "{base}/availability",
    "points": {
        "soc_pct": {"state_topic": "{base}/state", "value_path": "soc"},
        "battery_w": {"state_topic": "{base}/state", "value_path": "power"},
        "reserve_pct": {"state_topic": "{base}/state", "value_path": "reserve",
                        "command_topic": "{base}/set/reserve"},
    },
}  # fmt: skip


def test_options_expand_topics_and_derive_capabilities() -> None:
    options = MqttBatteryOptions.model_validate(SIM_BATTERY)
    assert options.port == 1883
    assert options.topics() == {
        "soc_pct.state_topic": "sim/battery1/state",
        "battery_w.state_topic": "sim/battery1/state",
        "reserve_pct.state_topic": "sim/battery1/state",
        "reserve_pct.command_topic": "sim/battery1/set/reserve",
        "availability_topic": "sim/battery1/availability",
    }
    assert capabilities_of(options.points) == {Capability.BATTERY, Capability.BACKUP_RESERVE}


@pytest.mark.parametrize(("change", "error"), [
    ({"base_topic": None}, "base_topic"),
    ({"points": {"soc_pct": {"state_topic": "a"}}}, "both soc_pct and battery_w"),
    ({"points": {}}, "at least one point"),
    ({"points": {"grid_w": {"state_topic": "a/+"}}}, "no wildcards"),
    ({"points": {"grid_w": {"state_topic": "a", "scale": 0}}}, "scale"),
    ({"points": {"grid_w": {"state_topic": "a", "value_path": "a..b"}}}, "value_path"),
    ({"points": {"reserve_pct": {"state_topic": "a", "command_topic": "b", "retain": True}}}, "retain"),
    ({"points": {"reserve_pct": {"state_topic": "a", "command_topic": "b", "payload_template": "42"}}},
     "payload_template"),
    ({"points": {"reserve_pct": {"state_topic": "a"}}}, "command_topic"),
    ({"bogus": 1}, "bogus"),
])  # fmt: skip
def test_options_reject(change: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        MqttBatteryOptions.model_validate({**SIM_BATTERY, **change})
