"""Table tests of the pure Victron GX codec: topics, payloads, path <-> telemetry/setpoint mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from drivers.base import Capability, Setpoints
from drivers.victron_gx.codec import (
    BATTERY_LIFE_STATE,
    GONE,
    MAX_FEED_IN_POWER,
    MIN_SOC_LIMIT,
    PREVENT_FEEDBACK,
    JsonValue,
    capabilities_from,
    decode_value,
    encode_write,
    keepalive_topic,
    liveness_fault,
    n_topic,
    outstanding_probe,
    parse_n_topic,
    portal_of_serial_topic,
    r_topic,
    same_value,
    setpoint_writes,
    setpoints_from,
    telemetry_from,
    vebus_instance_of,
    w_topic,
)

NOW = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)
P = "c0619ab1f00d"
DISABLE_CHARGE = "vebus/227/Hub4/DisableCharge"
DISABLE_FEED_IN = "vebus/227/Hub4/DisableFeedIn"

GX: dict[str, Any] = {
    "system/0/Serial": P,
    "system/0/Dc/Pv/Power": 3200,
    "system/0/Dc/Battery/Power": 1500,  # + charging on the wire
    "system/0/Dc/Battery/Soc": 61.5,
    "system/0/Ac/Grid/L1/Power": -400, "system/0/Ac/Grid/L2/Power": -300, "system/0/Ac/Grid/L3/Power": -300,
    "system/0/Ac/Consumption/L1/Power": 234, "system/0/Ac/Consumption/L2/Power": 233,
    "system/0/Ac/Consumption/L3/Power": 233,
    "system/0/Ac/ActiveIn/Source": 1,
    MIN_SOC_LIMIT: 20, BATTERY_LIFE_STATE: 10, MAX_FEED_IN_POWER: -1, PREVENT_FEEDBACK: 0,
    DISABLE_CHARGE: 1, DISABLE_FEED_IN: 0, "vebus/227/Alarms/GridLost": 0,
    "platform/0/StormAlert": 0,
}  # fmt: skip


def test_topics() -> None:
    assert n_topic(P, MIN_SOC_LIMIT) == f"N/{P}/settings/0/Settings/CGwacs/BatteryLife/MinimumSocLimit"
    assert w_topic(P, DISABLE_CHARGE) == f"W/{P}/vebus/227/Hub4/DisableCharge"
    assert r_topic(P, "settings/0/Settings") == f"R/{P}/settings/0/Settings"
    assert keepalive_topic(P) == f"R/{P}/keepalive"


@pytest.mark.parametrize(("topic", "path"), [
    (f"N/{P}/system/0/Dc/Battery/Soc", "system/0/Dc/Battery/Soc"),
    (f"N/{P}/full_publish_completed", "full_publish_completed"),
    (f"N/{P}/", None),
    ("N/other/system/0/Serial", None),
    (f"W/{P}/system/0/Serial", None),
])  # fmt: skip
def test_parse_n_topic(topic: str, path: str | None) -> None:
    assert parse_n_topic(topic, P) == path


@pytest.mark.parametrize(("topic", "portal"), [
    (f"N/{P}/system/0/Serial", P),
    ("N/abc/system/0/Serial", "abc"),
    ("N//system/0/Serial", None),
    ("N/abc/system/1/Serial", None),
    ("R/abc/system/0/Serial", None),
    ("N/abc/system/0/Serial/x", None),
])  # fmt: skip
def test_portal_of_serial_topic(topic: str, portal: str | None) -> None:
    assert portal_of_serial_topic(topic) == portal


@pytest.mark.parametrize(("payload", "value"), [
    (b'{"value": 20}', 20),
    (b'{"value": 61.5}', 61.5),
    (b'{"max": 1, "min": 0, "value": 1}', 1),  # settings carry their limits
    (b'{"value": "c0619ab1f00d"}', "c0619ab1f00d"),
    (b'{"value": null}', None),  # invalid D-Bus value
    (b"", GONE),  # the device vanished
    (b"  ", GONE),
])  # fmt: skip
def test_decode_value(payload: bytes, value: Any) -> None:
    assert decode_value(payload) == value


@pytest.mark.parametrize("payload", [b"20", b"{not json", b'{"v": 1}', b'{"value": [1]}', b"\xff\xfe"])
def test_decode_value_rejects(payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"JSON|value"):
        decode_value(payload)


@pytest.mark.parametrize(("value", "payload"), [
    (20, b'{"value":20}'), (20.0, b'{"value":20}'), (20.5, b'{"value":20.5}'), (-1, b'{"value":-1}'),
])  # fmt: skip
def test_encode_write(value: JsonValue, payload: bytes) -> None:
    assert encode_write(value) == payload


@pytest.mark.parametrize(("expected", "actual", "same"), [
    (20, 20.0, True), (20, 20.5, False), (1, True, False), (0, None, False), (0, GONE, False),
    ("a", "a", True), (None, None, True), (None, GONE, False),
])  # fmt: skip
def test_same_value(expected: JsonValue, actual: Any, same: bool) -> None:
    assert same_value(expected, actual) is same


#: The simulated GX's own storm path (an option: Venus OS has no storm alert).
SIM_STORM = "platform/0/StormAlert"


def test_telemetry_signs_and_sums() -> None:
    t = telemetry_from(GX, now=NOW, capacity_wh=10000, storm_path=SIM_STORM)
    assert t.taken_at == NOW
    assert t.battery_w == -1500  # charging -> negative in the gateway's convention
    assert t.grid_w == -1000  # exporting
    assert t.solar_w == 3200
    assert t.load_w == 700
    assert t.soc_pct == 61.5
    assert (t.grid_up, t.storm_alert, t.capacity_wh) == (True, False, 10000)


@pytest.mark.parametrize(("changes", "field", "value"), [
    ({"system/0/Ac/ActiveIn/Source": 240}, "grid_up", False),
    ({"system/0/Ac/ActiveIn/Source": None, "vebus/227/Alarms/GridLost": 2}, "grid_up", False),
    ({"system/0/Ac/ActiveIn/Source": GONE, "vebus/227/Alarms/GridLost": GONE}, "grid_up", None),
    ({"platform/0/StormAlert": 1}, "storm_alert", True),
    ({"system/0/Dc/Battery/Power": -800}, "battery_w", 800),  # discharging
    ({"system/0/Dc/Battery/Power": None}, "battery_w", None),
    ({"system/0/Ac/PvOnGrid/L1/Power": 500, "system/0/Ac/PvOnOutput/L2/Power": 100}, "solar_w", 3800),
    ({"system/0/Dc/Pv/Power": -3}, "solar_w", 0),  # sensors read a few W negative at night
    ({"system/0/Ac/Grid/L2/Power": GONE, "system/0/Ac/Grid/L3/Power": GONE}, "grid_w", -400),
])  # fmt: skip
def test_telemetry_cases(changes: dict[str, Any], field: str, value: Any) -> None:
    assert getattr(telemetry_from({**GX, **changes}, now=NOW, storm_path=SIM_STORM), field) == value


@pytest.mark.parametrize(("storm_path", "changes", "alert"), [
    (None, {SIM_STORM: 1}, None),  # not configured: a published path means nothing
    ("switch/50/State", {SIM_STORM: 1, "switch/50/State": 0}, False),
    ("switch/50/State", {"switch/50/State": True}, True),
    ("switch/50/State", {"switch/50/State": None}, None),
    ("switch/50/State", {"switch/50/State": GONE}, None),
    ("switch/50/State", {}, None),  # configured but not published
])  # fmt: skip
def test_storm_alert_only_from_the_configured_path(
    storm_path: str | None, changes: dict[str, Any], alert: bool | None
) -> None:
    values = {**GX, **changes}
    assert telemetry_from(values, now=NOW, storm_path=storm_path).storm_alert is alert
    assert (Capability.STORM_WATCH in capabilities_from(values, storm_path=storm_path)) is (alert is not None)


#: The capabilities of the full GX above, and what goes when a path is missing (null = Venus has
#: no data for it, GONE = it vanished, absent = never published).
ALL_BUT_STORM = frozenset(Capability) - {Capability.BATTERY_POWER, Capability.STORM_WATCH}


@pytest.mark.parametrize(("changes", "lost"), [
    ({}, set()),
    ({"system/0/Dc/Battery/Soc": None, "system/0/Dc/Battery/Power": None}, {Capability.BATTERY}),
    ({"system/0/Dc/Battery/Soc": None}, {Capability.BATTERY}),
    ({"system/0/Dc/Pv/Power": None}, {Capability.SOLAR}),
    ({"system/0/Dc/Pv/Power": None, "system/0/Ac/PvOnGrid/L2/Power": 0}, set()),  # AC-coupled PV
    ({"system/0/Dc/Pv/Power": GONE, "system/0/Ac/PvOnOutput/L1/Power": 120}, set()),
    ({f"system/0/Ac/Grid/L{n}/Power": None for n in (1, 2, 3)}, {Capability.GRID_METER}),
    ({"system/0/Ac/Grid/L2/Power": None, "system/0/Ac/Grid/L3/Power": None}, set()),  # one phase
    ({"system/0/Ac/ActiveIn/Source": None}, set()),  # the GridLost alarm still tells
    ({"system/0/Ac/ActiveIn/Source": None, "vebus/227/Alarms/GridLost": GONE}, {Capability.GRID_STATUS}),
    ({MIN_SOC_LIMIT: GONE}, {Capability.BACKUP_RESERVE}),
    ({DISABLE_CHARGE: None}, {Capability.GRID_CHARGING}),
    ({MAX_FEED_IN_POWER: GONE, PREVENT_FEEDBACK: GONE, DISABLE_FEED_IN: GONE}, {Capability.EXPORT_LIMIT}),
    ({PREVENT_FEEDBACK: GONE, DISABLE_FEED_IN: GONE}, set()),  # MaxFeedInPower alone caps export
])  # fmt: skip
def test_capabilities_follow_the_published_paths(changes: dict[str, Any], lost: set[Capability]) -> None:
    assert capabilities_from({**GX, **changes}) == ALL_BUT_STORM - lost


def test_capabilities_of_a_gx_without_battery_or_feed_in_control() -> None:
    # A PV-only Venus site: systemcalc publishes the battery paths as null, no ESS feed-in settings.
    pv_only: dict[str, Any] = {
        "system/0/Serial": P, "system/0/Ac/PvOnGrid/L1/Power": 1800,
        "system/0/Dc/Battery/Soc": None, "system/0/Dc/Battery/Power": None,
        "system/0/Ac/Grid/L1/Power": -900, "system/0/Ac/ActiveIn/Source": 1,
    }  # fmt: skip
    assert capabilities_from(pv_only) == {Capability.SOLAR, Capability.GRID_METER, Capability.GRID_STATUS}
    assert capabilities_from({}) == frozenset()


@pytest.mark.parametrize(("published", "instance"), [
    ({"system/0/VebusInstance": 276}, 276),
    ({"system/0/VebusInstance": 227.0}, 227),
    ({"system/0/VebusInstance": None}, None),  # no VE.Bus unit
    ({"system/0/VebusInstance": GONE}, None),
    ({"system/0/VebusInstance": "276"}, None),
    ({"system/0/VebusInstance": 2.5}, None),
    ({}, None),
])  # fmt: skip
def test_vebus_instance_of(published: dict[str, Any], instance: int | None) -> None:
    assert vebus_instance_of(published) == instance


def test_without_a_vebus_unit_its_paths_are_neither_read_nor_written() -> None:
    sp = Setpoints(reserve_pct=20, grid_charging=True, export_limit_w=0)
    assert setpoint_writes(sp, GX, vebus_instance=None) == {MAX_FEED_IN_POWER: 0, PREVENT_FEEDBACK: 1}
    assert setpoints_from({**GX, DISABLE_CHARGE: 0}, vebus_instance=None).grid_charging is False
    caps = capabilities_from(GX, vebus_instance=None)
    assert Capability.GRID_CHARGING not in caps
    assert Capability.GRID_STATUS in caps  # from Ac/ActiveIn/Source
    lost = {**GX, "system/0/Ac/ActiveIn/Source": None, "vebus/227/Alarms/GridLost": 2}
    assert telemetry_from(lost, now=NOW, vebus_instance=None).grid_up is None


def test_setpoint_writes_only_touch_settings_the_gx_publishes() -> None:
    # Writing a setting the GX lacks would never be echoed: the command would fail for nothing.
    no_ess = {k: v for k, v in GX.items() if k not in {MIN_SOC_LIMIT, MAX_FEED_IN_POWER}}
    sp = Setpoints(reserve_pct=40, grid_charging=True, export_limit_w=0)
    assert setpoint_writes(sp, no_ess) == {DISABLE_CHARGE: 0}
    assert setpoint_writes(sp, {**GX, DISABLE_CHARGE: None}) == {
        MIN_SOC_LIMIT: 40, MAX_FEED_IN_POWER: 0, PREVENT_FEEDBACK: 1, DISABLE_FEED_IN: 1,
    }  # fmt: skip


def test_telemetry_of_nothing_is_all_none() -> None:
    t = telemetry_from({}, now=NOW)
    assert (t.solar_w, t.battery_w, t.grid_w, t.load_w, t.soc_pct, t.grid_up) == (None,) * 6


@pytest.mark.parametrize(("changes", "setpoints"), [
    ({}, Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=None)),
    ({DISABLE_CHARGE: 0}, Setpoints(reserve_pct=20, grid_charging=True, export_limit_w=None)),
    ({BATTERY_LIFE_STATE: 9}, Setpoints(reserve_pct=100, grid_charging=False, export_limit_w=None)),
    ({MAX_FEED_IN_POWER: 2500}, Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=2500)),
    ({MAX_FEED_IN_POWER: 2500, PREVENT_FEEDBACK: 1}, Setpoints(reserve_pct=20, grid_charging=False,
                                                               export_limit_w=0)),
    ({DISABLE_FEED_IN: 1}, Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=0)),
    ({MIN_SOC_LIMIT: 35.4}, Setpoints(reserve_pct=35, grid_charging=False, export_limit_w=None)),
])  # fmt: skip
def test_setpoints_from(changes: dict[str, Any], setpoints: Setpoints) -> None:
    assert setpoints_from({**GX, **changes}) == setpoints


@pytest.mark.parametrize(("setpoints", "changes", "writes"), [
    (Setpoints(reserve_pct=20, grid_charging=False), {}, {}),
    (Setpoints(reserve_pct=35, grid_charging=True), {}, {MIN_SOC_LIMIT: 35, DISABLE_CHARGE: 0}),
    (Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=3000), {}, {MAX_FEED_IN_POWER: 3000}),
    (Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=0), {},
     {MAX_FEED_IN_POWER: 0, PREVENT_FEEDBACK: 1, DISABLE_FEED_IN: 1}),
    (Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=None),
     {MAX_FEED_IN_POWER: 0, PREVENT_FEEDBACK: 1, DISABLE_FEED_IN: 1},
     {MAX_FEED_IN_POWER: -1, PREVENT_FEEDBACK: 0, DISABLE_FEED_IN: 0}),
    (Setpoints(reserve_pct=20, grid_charging=False), {BATTERY_LIFE_STATE: 9}, {BATTERY_LIFE_STATE: 10}),
    (Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=0),  # a vanished switch
     {PREVENT_FEEDBACK: GONE}, {MAX_FEED_IN_POWER: 0, DISABLE_FEED_IN: 1}),
    (Setpoints(reserve_pct=20, grid_charging=False), {MIN_SOC_LIMIT: 20.0}, {}),
])  # fmt: skip
def test_setpoint_writes_only_what_differs(
    setpoints: Setpoints, changes: dict[str, Any], writes: dict[str, Any]
) -> None:
    assert setpoint_writes(setpoints, {**GX, **changes}) == writes


def test_setpoint_writes_skip_switches_the_gx_does_not_have() -> None:
    gx = {k: v for k, v in GX.items() if k not in {PREVENT_FEEDBACK, DISABLE_FEED_IN}}
    assert setpoint_writes(Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=0), gx) == {
        MAX_FEED_IN_POWER: 0
    }


def test_setpoint_writes_order_never_passes_through_unlimited() -> None:
    current = {**GX, MAX_FEED_IN_POWER: 0, PREVENT_FEEDBACK: 1, DISABLE_FEED_IN: 1}
    writes = setpoint_writes(Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=800), current)
    assert list(writes) == [MAX_FEED_IN_POWER, PREVENT_FEEDBACK, DISABLE_FEED_IN]


def test_setpoint_writes_round_trip_through_setpoints_from() -> None:
    for sp in (Setpoints(reserve_pct=55, grid_charging=True, export_limit_w=1200),
               Setpoints(reserve_pct=5, grid_charging=False, export_limit_w=0),
               Setpoints(reserve_pct=100, grid_charging=True, export_limit_w=None)):  # fmt: skip
        assert setpoints_from({**GX, **setpoint_writes(sp, GX)}) == sp


# --- liveness: judged by the keepalive cycle, not by the age of the last changed value ---------

KEEPALIVE_S, REPLY_S = 10.0, 5.0


def fault(now: float, last: float | None, probe: float | None) -> str | None:
    return liveness_fault(now, last_message_at=last, probe_since=probe,
                          keepalive_s=KEEPALIVE_S, reply_timeout_s=REPLY_S)  # fmt: skip


@pytest.mark.parametrize(("now", "last", "probe", "gone"), [
    (0.0, None, None, "nothing received yet"),
    # a quiet night: no value changed for an hour, but every probe was answered
    (3600.0, 3598.0, 3598.0, None),
    (3600.0, 3590.5, 3590.0, None),  # answered; the next probe is due at 3600
    # a probe still within its reply allowance
    (3604.0, 3590.5, 3600.0, None),
    # the oldest unanswered probe is overdue
    (3605.5, 3590.5, 3600.0, "no answer to the keepalive probe sent 5.5 s ago"),
    # no probe went out (keepalive loop stuck): a whole cycle plus the allowance of silence
    (3615.5, 3600.0, 3590.0, "nothing received for 15.5 s"),
    (3615.0, 3600.0, None, None),
    # a probe sent late (a busy machine) after a long silence: its answer decides, not the
    # silence before it
    (3620.0, 3600.0, 3618.0, None),
    (3623.5, 3600.0, 3618.0, "no answer to the keepalive probe sent 5.5 s ago"),
])  # fmt: skip
def test_liveness_fault(now: float, last: float | None, probe: float | None, gone: str | None) -> None:
    assert fault(now, last, probe) == gone


def test_outstanding_probe_tracks_the_oldest_unanswered_one() -> None:
    since = outstanding_probe(None, 0.0, now=10.0)  # first probe
    assert since == 10.0
    since = outstanding_probe(since, 0.0, now=20.0)  # unanswered: the older one counts
    assert since == 10.0
    assert fault(15.5, 0.0, since) == "no answer to the keepalive probe sent 5.5 s ago"
    since = outstanding_probe(since, 20.1, now=30.0)  # something arrived since: a new probe
    assert since == 30.0
    assert fault(34.0, 20.1, since) is None
