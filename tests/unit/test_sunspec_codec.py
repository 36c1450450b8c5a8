"""Table tests of the sans-IO SunSpec codec and the driver's pure mapping, on register images."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
import sunspec2.device as ssdev
from pydantic import ValidationError

from drivers.base import Capability, Setpoints
from drivers.errors import ConfigurationError
from drivers.sunspec.codec import (
    PRELOADED_MODELS,
    Discovery,
    DiscoveryError,
    ModelBlock,
    ModelLocation,
    PointType,
    PointValue,
    PointValueError,
    ReadRequest,
    SunSpecMap,
    decode_model,
    decode_raw,
    discovery_step,
    encode_raw,
    layout,
    model_def,
    plan_reads,
    start_discovery,
)
from drivers.sunspec.driver import (
    capabilities_from,
    device_info_from,
    setpoint_targets,
    setpoints_from,
    telemetry_from,
)
from drivers.sunspec.options import SunSpecOptions, VendorBit

NOW = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)

# (type, registers, raw value): drives decode_raw one way and encode_raw the other.
RAW_CASES: list[tuple[PointType, list[int], PointValue]] = [
    ("int16", [0x0001], 1),
    ("int16", [0xFFFF], -1),
    ("int16", [0x7FFF], 32767),
    ("int16", [0x8001], -32767),
    ("uint16", [0x0000], 0),
    ("uint16", [0xFFFE], 65534),
    ("count", [3], 3),
    ("acc16", [0x0001], 1),
    ("enum16", [4], 4),
    ("bitfield16", [0x0010], 16),
    ("sunssf", [0xFFFE], -2),
    ("sunssf", [0x0003], 3),
    ("int32", [0xFFFF, 0xFED4], -300),
    ("int32", [0x0001, 0x0000], 65536),
    ("int32", [0x7FFF, 0xFFFF], 2**31 - 1),
    ("uint32", [0x0001, 0x0002], 65538),
    ("uint32", [0xFFFF, 0xFFFE], 2**32 - 2),
    ("acc32", [0x0012, 0xD687], 1_234_567),
    ("enum32", [0x0000, 0x0007], 7),
    ("bitfield32", [0x0000, 0x0011], 0x11),
    ("ipaddr", [0xC0A8, 0x0001], 0xC0A80001),
    ("int64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], -2),
    ("uint64", [0x0000, 0x0000, 0x0001, 0x0000], 65536),
    ("acc64", [0x0000, 0x0000, 0x0000, 0x002A], 42),
    ("float32", [0x3FC0, 0x0000], 1.5),
    ("float32", [0xC120, 0x0000], -10.0),
    ("string", [0x5369, 0x6D43, 0x6F00, 0x0000], "SimCo"),
    ("string", [0x4142, 0x4344], "ABCD"),
]

# (type, registers) that mean "not implemented": decode to None, and None encodes to them.
SENTINEL_CASES: list[tuple[PointType, list[int]]] = [
    ("int16", [0x8000]),
    ("sunssf", [0x8000]),
    ("uint16", [0xFFFF]),
    ("count", [0xFFFF]),
    ("enum16", [0xFFFF]),
    ("bitfield16", [0xFFFF]),
    ("acc16", [0x0000]),
    ("int32", [0x8000, 0x0000]),
    ("uint32", [0xFFFF, 0xFFFF]),
    ("enum32", [0xFFFF, 0xFFFF]),
    ("bitfield32", [0xFFFF, 0xFFFF]),
    ("acc32", [0x0000, 0x0000]),
    ("ipaddr", [0x0000, 0x0000]),
    ("int64", [0x8000, 0, 0, 0]),
    ("uint64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]),
    ("acc64", [0, 0, 0, 0]),
    ("float32", [0x7FC0, 0x0000]),
    ("string", [0x0000, 0x0000, 0x0000]),
]


@pytest.mark.parametrize(("ptype", "registers", "value"), RAW_CASES)
def test_decode_raw_table(ptype: PointType, registers: list[int], value: PointValue) -> None:
    assert decode_raw(ptype, registers) == value


@pytest.mark.parametrize(("ptype", "registers", "value"), RAW_CASES)
def test_encode_raw_table(ptype: PointType, registers: list[int], value: PointValue) -> None:
    assert encode_raw(ptype, value, size=len(registers)) == registers


@pytest.mark.parametrize(("ptype", "registers"), SENTINEL_CASES)
def test_not_implemented_values_decode_to_none(ptype: PointType, registers: list[int]) -> None:
    assert decode_raw(ptype, registers) is None
    assert encode_raw(ptype, None, size=len(registers)) == registers


def test_string_with_trailing_garbage_after_nul_is_cut() -> None:
    assert decode_raw("string", [0x4100, 0x4242]) == "A"


@pytest.mark.parametrize(
    ("ptype", "value"),
    [
        ("int16", 32768),
        ("int16", -32768),  # the sentinel itself
        ("uint16", -1),
        ("uint16", 0xFFFF),
        ("acc32", 0),
        ("int32", 2**31),
        ("enum16", "x"),
        ("uint16", True),
        ("float32", "1.0"),
    ],
)
def test_encode_raw_rejects_out_of_range_and_sentinels(ptype: PointType, value: Any) -> None:
    with pytest.raises(PointValueError):
        encode_raw(ptype, value)


def test_encode_raw_rejects_long_string() -> None:
    with pytest.raises(PointValueError):
        encode_raw("string", "ABCDE", size=2)


def test_decode_raw_rejects_wrong_register_count() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode_raw("int32", [1])


# --------------------------------------------------------------------------- model images


def _image(model: ssdev.Model) -> list[int]:
    """Registers of a model as pysunspec2 (an independent encoder) would serve them."""
    blob = model.get_mb()
    return list(struct.unpack(f">{len(blob) // 2}H", blob))


def _model(model_id: int, **values: Any) -> ssdev.Model:
    model = ssdev.Model(model_id)
    for name, value in values.items():
        getattr(model, name).value = value
    return model


def _block(model_id: int, address: int = 40000, **values: Any) -> ModelBlock:
    return decode_model(model_def(model_id), address, _image(_model(model_id, **values)))


# (point, raw register, sf register, engineering value): scale factors positive and negative.
SCALED_CASES: list[tuple[str, int, int, float]] = [
    ("MinRsvPct", 2000, 0xFFFE, 20.0),  # sf -2
    ("MinRsvPct", 205, 0xFFFF, 20.5),  # sf -1
    ("MinRsvPct", 20, 0x0000, 20.0),  # sf 0
    ("MinRsvPct", 2, 0x0001, 20.0),  # sf +1
    ("MinRsvPct", 3, 0x0002, 300.0),  # sf +2
]


@pytest.mark.parametrize(("point", "raw", "sf", "value"), SCALED_CASES)
def test_scaled_point_decode_and_encode(point: str, raw: int, sf: int, value: float) -> None:
    regs = _image(_model(124, MinRsvPct=0, MinRsvPct_SF=0))
    slots = layout(model_def(124))
    regs[slots[point].offset] = raw
    regs[slots["MinRsvPct_SF"].offset] = sf
    block = decode_model(model_def(124), 40122, regs)
    assert block.value(point) == pytest.approx(value)
    write = block.encode(point, value)
    assert write.address == 40122 + slots[point].offset
    assert write.values == (raw,)


def test_signed_scaled_int16_and_unimplemented_sf() -> None:
    block = _block(124, InWRte=-50, InOutWRte_SF=0, OutWRte=25)
    assert block.value("InWRte") == -50.0
    assert block.value("OutWRte") == 25.0
    # MinRsvPct implemented but its SF is not: refuse to guess the power of ten.
    block = _block(124, MinRsvPct=20)
    assert block.raw("MinRsvPct") == 20
    assert block.sf("MinRsvPct") is None
    assert block.value("MinRsvPct") is None
    with pytest.raises(PointValueError):
        block.encode("MinRsvPct", 30)


def test_model_decode_matches_pysunspec2() -> None:
    model = _model(
        103,
        A=2170, A_SF=-2, W=-1500, W_SF=0, Hz=5002, Hz_SF=-2, WH=123456, WH_SF=1,
        DCW=4200, DCW_SF=0, St=4, Evt1=16, Evt2=0, EvtVnd1=1, TmpCab=250, Tmp_SF=-1,
    )  # fmt: skip
    block = decode_model(model_def(103), 40070, _image(model))
    for name, point in model.points.items():
        assert block.value(name) == point.cvalue, name
    assert block.value("WH") == 1_234_560.0
    assert block.value("VA") is None


def test_common_model_strings() -> None:
    block = _block(1, Mn="SimCo", Md="SimHybrid 8K", SN="SIM0001", Vr="1.0.0", DA=1)
    assert (block.value("Mn"), block.value("Md"), block.value("SN")) == (
        "SimCo",
        "SimHybrid 8K",
        "SIM0001",
    )
    assert block.value("Opt") is None
    assert block.encode("Mn", None).values == (0,) * 16


def test_decode_model_copies_its_input_and_checks_the_id() -> None:
    regs = _image(_model(124, WChaMax=5000, WChaMax_SF=0))
    before = list(regs)
    block = decode_model(model_def(124), 40122, regs)
    regs[2] = 1
    assert block.value("WChaMax") == 5000.0
    assert regs != before
    with pytest.raises(ValueError, match="not 124"):
        decode_model(model_def(124), 40122, [123, 24])


def test_legacy_short_model_reads_missing_points_as_not_implemented() -> None:
    regs = _image(_model(1, Mn="X", Md="Y", SN="Z"))[:-1]  # legacy L=65 without Pad
    block = decode_model(model_def(1), 40002, regs)
    assert block.value("Pad") is None
    assert block.value("SN") == "Z"


def test_fixed_groups_are_placed_after_the_top_level_points() -> None:
    slots = layout(model_def(704))
    assert slots["PFWInj.PF"].offset == 59
    assert slots["PFWAbsRvrt.Ext"].offset == 66
    assert slots["PFWInj.PF"].sf == "PF_SF"


def test_repeating_group_count_comes_from_the_device() -> None:
    mdef = model_def(803)
    assert not mdef.static
    assert mdef.length is None
    top = layout(mdef, [803, 26] + [0] * 26)
    n_str = top["NStr"].offset
    group_size = 32
    regs = [0] * (top["V_SF"].offset + 1 + 2 * group_size)
    regs[0], regs[1], regs[n_str] = 803, len(regs) - 2, 2
    slots = layout(mdef, regs)
    first, second = slots["string[1].StrNMod"].offset, slots["string[2].StrNMod"].offset
    assert second - first == group_size
    assert "string[3].StrNMod" not in slots
    with pytest.raises(ValueError, match="repeating"):
        layout(mdef)


def test_every_shipped_model_definition_loads() -> None:
    folder = resources.files("sunspec2") / "models" / "json"
    ids = [
        int(m.group(1))
        for f in folder.iterdir()
        if (m := re.fullmatch(r"model_(\d+)\.json", f.name)) is not None
    ]
    assert len(ids) > 100
    for model_id in ids:
        assert model_def(model_id).id == model_id


@pytest.mark.parametrize("model_id", PRELOADED_MODELS)
def test_static_lengths_match_pysunspec2(model_id: int) -> None:
    assert model_def(model_id).length == len(_image(ssdev.Model(model_id))) - 2


def test_large_models_are_read_in_chunks() -> None:
    loc = ModelLocation(701, 40070, 153)
    assert loc.requests() == (ReadRequest(40070, 125), ReadRequest(40195, 30))
    assert ModelLocation(203, 40000, 105).requests() == (ReadRequest(40000, 107),)


# --------------------------------------------------------------------------- discovery

END = [0xFFFF, 0]
SUNS = [0x5375, 0x6E53]


def _chain(*models: ssdev.Model) -> list[int]:
    return SUNS + [r for m in models for r in _image(m)] + END


def _device(images: dict[int, list[int]]) -> Callable[[int, int], list[int] | None]:
    """A register space: reads fully inside one image succeed, anything else is rejected."""

    def read(address: int, count: int) -> list[int] | None:
        for base, regs in images.items():
            if base <= address and address + count <= base + len(regs):
                return regs[address - base : address - base + count]
        return None

    return read


def _discover(
    read: Callable[[int, int], list[int] | None], bases: Sequence[int] | None = None
) -> tuple[SunSpecMap, list[ReadRequest]]:
    state: Discovery | SunSpecMap = start_discovery() if bases is None else start_discovery(bases)
    asked: list[ReadRequest] = []
    while isinstance(state, Discovery):
        asked.append(state.request)
        state = discovery_step(state, read(state.request.address, state.request.count))
    return state, asked


@pytest.mark.parametrize("base", [40000, 0, 50000])
def test_discovery_finds_the_map_at_each_base(base: int) -> None:
    image = _chain(ssdev.Model(1), ssdev.Model(103), ssdev.Model(124))
    found, asked = _discover(_device({base: image}))
    assert found.base_address == base
    assert found.model_ids == (1, 103, 124)
    assert found.models[0] == ModelLocation(1, base + 2, 66)
    assert found.models[1] == ModelLocation(103, base + 70, 50)
    assert found.find(124) == ModelLocation(124, base + 122, 24)
    assert found.find(802) is None
    # Probed only the bases before it, then one header read per model after the first.
    probes = [r for r in asked if r.count == 4]
    assert [r.address for r in probes] == [40000, 0, 50000][: [40000, 0, 50000].index(base) + 1]
    assert [r for r in asked if r.count == 2] == [
        ReadRequest(base + 70, 2),
        ReadRequest(base + 122, 2),
        ReadRequest(base + 148, 2),
    ]


def test_discovery_skips_a_wrong_marker() -> None:
    wrong = [0x5375, 0x6E54, 1, 66]
    image = _chain(ssdev.Model(1))
    found, _ = _discover(_device({40000: wrong, 0: image}))
    assert found.base_address == 0


def test_discovery_without_marker_anywhere_fails() -> None:
    read = _device({40000: [0x1234] * 10, 0: [0] * 10, 50000: [0xFFFF] * 10})
    with pytest.raises(DiscoveryError, match="40000, 0, 50000"):
        _discover(read)
    assert issubclass(DiscoveryError, ConfigurationError)


def test_discovery_with_only_a_given_base() -> None:
    with pytest.raises(DiscoveryError):
        _discover(_device({0: _chain(ssdev.Model(1))}), bases=[40000])


def test_truncated_chain_fails() -> None:
    image = _chain(ssdev.Model(1), ssdev.Model(124))[: -len(END)]  # no end marker
    with pytest.raises(DiscoveryError, match="truncated"):
        _discover(_device({40000: image}))


def test_chain_cut_inside_a_header_fails() -> None:
    state = start_discovery()
    state_or_map = discovery_step(state, [*SUNS, 1, 66])
    assert isinstance(state_or_map, Discovery)
    with pytest.raises(DiscoveryError, match="truncated"):
        discovery_step(state_or_map, [124])


def test_chain_running_past_the_address_space_fails() -> None:
    with pytest.raises(DiscoveryError, match="address space"):
        discovery_step(start_discovery([65000]), [*SUNS, 1, 1000])


def test_empty_map() -> None:
    found = discovery_step(start_discovery(), [*SUNS, *END])
    assert found == SunSpecMap(40000, ())


# --------------------------------------------------------------------------- driver mapping


def _hybrid_blocks(**overrides: dict[str, Any]) -> dict[int, ModelBlock]:
    points: dict[int, dict[str, Any]] = {
        1: {"Mn": "SimCo", "Md": "SimHybrid 8K", "SN": "SIM0001", "Vr": "1.0.0"},
        103: {"W": 2000, "W_SF": 0, "DCW": 3000, "DCW_SF": 0, "Evt1": 0, "EvtVnd1": 1},
        120: {"DERTyp": 82, "WRtg": 8000, "WRtg_SF": 0, "WHRtg": 13500, "WHRtg_SF": 0},
        123: {"WMaxLimPct": 100, "WMaxLimPct_SF": 0, "WMaxLim_Ena": 0},
        124: {
            "WChaMax": 5000,
            "WChaMax_SF": 0,
            "StorCtl_Mod": 0,
            "MinRsvPct": 20,
            "MinRsvPct_SF": 0,
            "ChaState": 50,
            "ChaState_SF": 0,
            "InWRte": 0,
            "OutWRte": 0,
            "InOutWRte_RvrtTms": 0,
            "InOutWRte_SF": 0,
            "ChaGriSet": 0,
        },
        802: {
            "WHRtg": 1350,
            "WHRtg_SF": 1,
            "SoC": 500,
            "SoC_SF": -1,
            "W": -1000,
            "W_SF": 0,
            "WChaRteMax": 5000,
            "WDisChaRteMax": 4000,
            "WChaDisChaMax_SF": 0,
        },
        203: {"W": -500, "W_SF": 0, "TotWhImp": 1000, "TotWhExp": 2000, "TotWh_SF": 0},
    }
    for model_id, values in overrides.items():
        points[int(model_id.lstrip("m"))].update(values)
    return {mid: _block(mid, **values) for mid, values in points.items()}


#: The simulated inverter's vendor convention: EvtVnd1 bit 0 = storm watch (an option, not SunSpec).
SIM_STORM = VendorBit(evtvnd1_bit=0)


def test_telemetry_signs_and_balance() -> None:
    blocks = _hybrid_blocks()
    t = telemetry_from(blocks, now=NOW, storm_alert=SIM_STORM)
    assert (t.solar_w, t.battery_w, t.grid_w) == (3000.0, -1000.0, -500.0)
    assert t.load_w == 1500.0
    assert (t.soc_pct, t.capacity_wh, t.grid_up, t.storm_alert) == (50.0, 13500.0, True, True)
    assert (t.counters.grid_import_wh, t.counters.grid_export_wh) == (1000.0, 2000.0)
    flipped = telemetry_from(blocks, now=NOW, battery_sign=-1, meter_sign=-1)
    assert (flipped.battery_w, flipped.grid_w) == (1000.0, 500.0)
    assert (flipped.counters.grid_import_wh, flipped.counters.grid_export_wh) == (2000.0, 1000.0)
    down = telemetry_from(_hybrid_blocks(m103={"Evt1": 16, "EvtVnd1": 0}), now=NOW, storm_alert=SIM_STORM)
    assert (down.grid_up, down.storm_alert) == (False, False)


def test_capabilities_and_info_from_models() -> None:
    blocks = _hybrid_blocks()
    assert capabilities_from(blocks, storm_alert=SIM_STORM) == frozenset(Capability)
    info = device_info_from(blocks)
    assert (info.manufacturer, info.model, info.serial_number) == (
        "SimCo",
        "SimHybrid 8K",
        "SIM0001",
    )
    assert (info.nameplate_power_w, info.battery_capacity_wh) == (8000.0, 13500.0)
    assert (info.max_charge_w, info.max_discharge_w) == (5000.0, 4000.0)
    pv_only = {mid: b for mid, b in blocks.items() if mid in (1, 103)}
    assert capabilities_from(pv_only, storm_alert=SIM_STORM) == {
        Capability.SOLAR,
        Capability.GRID_STATUS,
        Capability.STORM_WATCH,
    }


def test_no_storm_alert_is_read_unless_a_vendor_bit_is_configured() -> None:
    # EvtVnd1 bit 0 is set: on the simulator it means "storm watch"; on another make it may mean
    # a fan fault. Unconfigured, the driver reads nothing into it.
    blocks = _hybrid_blocks(m103={"EvtVnd1": 1})
    assert telemetry_from(blocks, now=NOW).storm_alert is None
    assert Capability.STORM_WATCH not in capabilities_from(blocks)


@pytest.mark.parametrize(("config", "events", "alert"), [
    ({"evtvnd1_bit": 0}, {"EvtVnd1": 1}, True),
    ({"evtvnd1_bit": 0}, {"EvtVnd1": 2}, False),
    ({"evtvnd1_bit": 31}, {"EvtVnd1": 1 << 31}, True),
    ({"evtvnd2_bit": 3}, {"EvtVnd1": 0xFF, "EvtVnd2": 0}, False),
    ({"evtvnd2_bit": 3}, {"EvtVnd2": 8}, True),
    ({"evtvnd3_bit": 5}, {"EvtVnd3": 32}, True),
    ({"evtvnd4_bit": 0}, {"EvtVnd4": 1}, True),
])  # fmt: skip
def test_storm_alert_reads_the_configured_vendor_bit(
    config: dict[str, int], events: dict[str, int], alert: bool
) -> None:
    bit = VendorBit.model_validate(config)
    blocks = _hybrid_blocks(m103={"EvtVnd1": 0, "EvtVnd2": 0, "EvtVnd3": 0, "EvtVnd4": 0, **events})
    assert telemetry_from(blocks, now=NOW, storm_alert=bit).storm_alert is alert
    assert Capability.STORM_WATCH in capabilities_from(blocks, storm_alert=bit)


def test_storm_alert_on_a_point_the_inverter_lacks_is_unknown() -> None:
    bit = VendorBit(evtvnd2_bit=0)
    blocks = _hybrid_blocks()  # EvtVnd2 left "not implemented" (0xFFFFFFFF)
    assert telemetry_from(blocks, now=NOW, storm_alert=bit).storm_alert is None
    assert Capability.STORM_WATCH not in capabilities_from(blocks, storm_alert=bit)


@pytest.mark.parametrize("storm_alert", [
    {}, {"evtvnd1_bit": 0, "evtvnd2_bit": 1}, {"evtvnd1_bit": 32}, {"evtvnd1_bit": -1}, {"bit": 0},
])  # fmt: skip
def test_storm_alert_option_names_exactly_one_bit(storm_alert: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        SunSpecOptions.model_validate({"host": "127.0.0.1", "storm_alert": storm_alert})
    assert SunSpecOptions.model_validate({"host": "127.0.0.1"}).storm_alert is None  # off by default


def _apply_targets(blocks: dict[int, ModelBlock], sp: Setpoints) -> dict[int, ModelBlock]:
    caps = capabilities_from(blocks)
    info = device_info_from(blocks)
    out = dict(blocks)
    for target in setpoint_targets(sp, blocks, caps, info):
        block = out[target.model_id]
        write = block.encode_raw(target.point, target.raw)
        regs = list(block.registers)
        start = write.address - block.address
        regs[start : start + len(write.values)] = write.values
        out[target.model_id] = decode_model(block.model, block.address, regs)
    return out


@pytest.mark.parametrize(
    "sp",
    [
        Setpoints(reserve_pct=35, grid_charging=True),
        Setpoints(reserve_pct=100, grid_charging=False, export_limit_w=0),
        Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=4000),
        Setpoints(reserve_pct=20, grid_charging=True, battery_w=2000, revert_s=300),
        Setpoints(reserve_pct=20, grid_charging=True, battery_w=-2500, revert_s=60),
    ],
)
def test_setpoints_round_trip_through_registers(sp: Setpoints) -> None:
    blocks = _apply_targets(_hybrid_blocks(), sp)
    caps = capabilities_from(blocks)
    assert setpoints_from(blocks, caps, device_info_from(blocks)) == sp


def test_setpoint_targets_write_rates_before_the_mode() -> None:
    blocks = _hybrid_blocks()
    sp = Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=800, battery_w=1000)
    names = [
        t.point for t in setpoint_targets(sp, blocks, capabilities_from(blocks), device_info_from(blocks))
    ]
    assert names.index("WMaxLimPct") < names.index("WMaxLim_Ena")
    assert names.index("OutWRte") < names.index("InOutWRte_RvrtTms") < names.index("StorCtl_Mod")
    raw = {
        t.point: t.raw
        for t in setpoint_targets(sp, blocks, capabilities_from(blocks), device_info_from(blocks))
    }
    assert raw["WMaxLimPct"] == 10  # 800 W of 8000 W
    assert raw["OutWRte"] == 25  # 1000 W of 4000 W max discharge
    assert raw["StorCtl_Mod"] == 2


def test_unsupported_setpoints_are_left_alone() -> None:
    blocks = {mid: b for mid, b in _hybrid_blocks().items() if mid != 123}
    sp = Setpoints(reserve_pct=30, grid_charging=True, export_limit_w=0)
    targets = setpoint_targets(sp, blocks, capabilities_from(blocks), device_info_from(blocks))
    assert {t.model_id for t in targets} == {124}


# --- read planning -------------------------------------------------------------------------------

def _locations(*models: tuple[int, int]) -> list[ModelLocation]:
    out, address = [], 40002
    for model_id, length in models:
        out.append(ModelLocation(model_id, address, length))
        address += length + 2
    return out


def test_plan_reads_groups_neighbours_within_the_fc3_limit() -> None:
    # the simulated hybrid: 1, 103, 120, 123, 124, 802, 203
    chain = _locations((1, 66), (103, 50), (120, 26), (123, 24), (124, 24), (802, 62), (203, 105))
    wanted = [m for m in chain if m.model_id in (103, 124, 802, 203)]
    spans, large = plan_reads(wanted)
    assert large == ()
    assert [[m.model_id for m in s.models] for s in spans] == [[103], [124, 802], [203]]
    for span in spans:
        assert span.count <= 125
        last = span.models[-1]
        assert span.address + span.count == last.address + last.length + 2


def test_plan_reads_slices_each_model_out_of_its_span() -> None:
    chain = _locations((123, 24), (124, 24))
    (span,), _ = plan_reads(chain)
    registers = list(range(span.count))
    assert span.slice(registers, chain[1]) == registers[26:52]
    assert span.slice(registers, chain[0])[:2] == [0, 1]


def test_plan_reads_leaves_models_over_the_limit_to_their_own_requests() -> None:
    chain = _locations((1, 66), (701, 153), (802, 62))
    spans, large = plan_reads(chain)
    assert [m.model_id for m in large] == [701]
    assert [[m.model_id for m in s.models] for s in spans] == [[1], [802]]
