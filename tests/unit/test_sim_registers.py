"""Table tests of the pure SunSpec register map: layout, encoding (decoded by pysunspec2), writes."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sunspec2.device as ssdev

from simulator.config import HomeConfig, SimDeviceConfig
from simulator.devices.sunspec_map import (
    BASE_ADDRESS,
    MODEL_IDS,
    SCALE_FACTORS,
    Layout,
    ModbusError,
    Nameplate,
    WriteRejected,
    apply_writes,
    decode_write,
    default_layout,
    default_stored,
    encode_image,
)
from simulator.physics import FirmwareSettings, HomePhysics, HomeTruth

BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2024, 6, 21, 13, 0, tzinfo=BERLIN)
NIGHT = datetime(2024, 6, 21, 1, 0, tzinfo=BERLIN)

HOME = HomeConfig(id="home-1", devices=[SimDeviceConfig(id="inverter", kind="sunspec", unit_id=3)])
PLATE = Nameplate.from_config(HOME, HOME.devices[0])
LAYOUT = default_layout()


def decode(layout: Layout, image: list[int]) -> dict[int, ssdev.Model]:
    """Decode every model of an image with pysunspec2's own Model class."""
    out = {}
    for m in layout.models:
        off = m.address - layout.base
        data = struct.pack(f">{m.length + 2}H", *image[off : off + m.length + 2])
        out[m.model_id] = ssdev.Model(m.model_id, data=data)
    return out


def snapshot(when: datetime = NOON, **fw: object) -> tuple[HomeTruth, FirmwareSettings]:
    phys = HomePhysics(HOME, when, BERLIN)
    if fw:
        phys.apply_firmware(replace(phys.firmware, **fw))  # type: ignore[arg-type]
    phys.step(60)
    return phys.truth(), phys.firmware


def image_of(truth: HomeTruth, fw: FirmwareSettings) -> list[int]:
    return encode_image(LAYOUT, PLATE, truth, fw, default_stored(PLATE))


# --- layout -------------------------------------------------------------------------------------


def test_layout_chains_models_from_their_definitions() -> None:
    assert [m.model_id for m in LAYOUT.models] == list(MODEL_IDS)
    address = BASE_ADDRESS + 2
    for m in LAYOUT.models:
        assert m.address == address
        reference = ssdev.Model(m.model_id)
        assert m.length == reference.points["L"].value == reference.len - 2
        for name, point in reference.points.items():
            assert LAYOUT.point(m.model_id, name).offset == point.offset
        address += m.length + 2
    assert LAYOUT.size == address + 2 - BASE_ADDRESS
    # Spot check against the published SunSpec tables (devices.md §1.5).
    assert LAYOUT.point(124, "MinRsvPct").address == LAYOUT.model_address(124) + 7


def test_image_has_marker_headers_and_end() -> None:
    truth, fw = snapshot()
    image = image_of(truth, fw)
    assert len(image) == LAYOUT.size
    assert image[:2] == [0x5375, 0x6E53]
    assert image[-2:] == [0xFFFF, 0]
    for m in LAYOUT.models:
        off = m.address - BASE_ADDRESS
        assert image[off : off + 2] == [m.model_id, m.length]


# --- encoding, decoded by pysunspec2 ------------------------------------------------------------


def test_encoded_values_decode_with_pysunspec2() -> None:
    truth, fw = snapshot()
    models = decode(LAYOUT, image_of(truth, fw))
    common, inv, plate, ctl, stor, bat, meter = (models[i] for i in MODEL_IDS)
    assert common.Mn.cvalue == "SimCo"
    assert common.Md.cvalue == "SimHybrid 8K"
    assert common.SN.cvalue == "SIM0001"
    assert common.Vr.cvalue == "1.0.0"
    assert common.DA.cvalue == 3
    assert inv.W.cvalue == round(truth.solar_w + truth.battery_w)
    assert inv.DCW.cvalue == round(truth.solar_w)
    assert inv.Hz.cvalue == pytest.approx(50.0)
    assert inv.St.cvalue == 4  # MPPT at noon
    assert inv.WH.cvalue == round(truth.solar_wh)
    assert inv.Evt1.cvalue == 0
    assert inv.VA.cvalue is None  # optional, not implemented
    assert plate.DERTyp.cvalue == 82
    assert plate.WRtg.cvalue == 8000
    assert plate.WHRtg.cvalue == 13500
    assert ctl.WMaxLim_Ena.cvalue == 0
    assert stor.MinRsvPct.cvalue == 20
    assert stor.ChaState.cvalue == pytest.approx(truth.soc_pct, abs=0.05)
    assert stor.ChaGriSet.cvalue == 0
    assert stor.StorCtl_Mod.cvalue == 0
    assert stor.ChaSt.cvalue == 4  # charging from PV at noon
    assert bat.SoC.cvalue == pytest.approx(truth.soc_pct, abs=0.05)
    assert bat.W.cvalue == round(truth.battery_w)
    assert bat.SoCRsvMin.cvalue == pytest.approx(20)
    assert meter.W.cvalue == round(truth.grid_w)
    assert meter.TotWhImp.cvalue == round(truth.grid_import_wh)
    assert meter.TotWhExp.cvalue == round(truth.grid_export_wh)
    assert meter.PhV.cvalue == pytest.approx(230.0)
    for model in models.values():
        assert model.error_info == ""


def test_scale_factors_are_served_as_configured() -> None:
    truth, fw = snapshot()
    models = decode(LAYOUT, image_of(truth, fw))
    for (model_id, name), sf in SCALE_FACTORS.items():
        assert models[model_id].points[name].value == sf, (model_id, name)
    assert SCALE_FACTORS[(124, "MinRsvPct_SF")] == 0
    assert SCALE_FACTORS[(124, "InOutWRte_SF")] == 0
    assert SCALE_FACTORS[(103, "W_SF")] == 0


def test_accumulators_are_implemented_from_the_start() -> None:
    phys = HomePhysics(HOME, NIGHT, BERLIN)
    models = decode(LAYOUT, image_of(phys.truth(), phys.firmware))
    assert models[103].WH.cvalue is not None
    assert models[203].TotWhImp.cvalue is not None
    assert models[203].TotWhExp.cvalue is not None


def test_status_points_follow_grid_storm_and_night() -> None:
    phys = HomePhysics(HOME, NIGHT, BERLIN)
    phys.set_grid_up(False)
    phys.set_storm_alert(True)
    models = decode(LAYOUT, image_of(phys.truth(), phys.firmware))
    assert models[103].Evt1.cvalue & (1 << 4)  # GRID_DISCONNECT
    assert models[103].EvtVnd1.cvalue & 1  # storm watch
    assert models[103].St.cvalue == 8  # STANDBY at night
    assert models[203].W.cvalue == 0
    assert models[203].Evt.cvalue & (1 << 2)  # power failure


def test_signs_battery_discharging_positive_grid_import_positive() -> None:
    truth, fw = snapshot(NIGHT, storage_mode=2)  # forced discharge at night: exports
    models = decode(LAYOUT, image_of(truth, fw))
    assert models[802].W.cvalue == 5000
    assert models[802].ChaSt.cvalue == 3  # DISCHARGING
    assert models[203].W.cvalue < 0
    assert models[124].StorCtl_Mod.cvalue == 2


# --- writes -------------------------------------------------------------------------------------


def addr(model_id: int, name: str) -> int:
    return LAYOUT.point(model_id, name).address


def u16(value: int) -> int:
    return value & 0xFFFF


@pytest.mark.parametrize(
    ("model_id", "name", "raw", "code"),
    [
        (124, "MinRsvPct", 101, ModbusError.ILLEGAL_VALUE),
        (124, "MinRsvPct", 0xFFFF, ModbusError.ILLEGAL_VALUE),
        (124, "ChaGriSet", 2, ModbusError.ILLEGAL_VALUE),
        (124, "StorCtl_Mod", 4, ModbusError.ILLEGAL_VALUE),
        (124, "InWRte", 101, ModbusError.ILLEGAL_VALUE),
        (124, "OutWRte", u16(-101), ModbusError.ILLEGAL_VALUE),
        (124, "WChaMax", 5001, ModbusError.ILLEGAL_VALUE),
        (123, "WMaxLimPct", 101, ModbusError.ILLEGAL_VALUE),
        (123, "WMaxLim_Ena", 2, ModbusError.ILLEGAL_VALUE),
        (802, "SoCRsvMin", 1001, ModbusError.ILLEGAL_VALUE),
        (124, "ChaState", 50, ModbusError.ILLEGAL_ADDRESS),  # read-only
        (124, "MinRsvPct_SF", 0, ModbusError.ILLEGAL_ADDRESS),  # read-only
        (124, "ID", 124, ModbusError.ILLEGAL_ADDRESS),
        (103, "W", 0, ModbusError.ILLEGAL_ADDRESS),
        (124, "VAChaMax", 10, ModbusError.ILLEGAL_ADDRESS),  # RW but not implemented
        (802, "SoC", 10, ModbusError.ILLEGAL_ADDRESS),
    ],
)
def test_bad_writes_are_rejected(model_id: int, name: str, raw: int, code: ModbusError) -> None:
    with pytest.raises(WriteRejected) as info:
        decode_write(LAYOUT, PLATE, addr(model_id, name), [raw])
    assert info.value.code == code


def test_writes_outside_the_map_are_rejected() -> None:
    for address in (BASE_ADDRESS, BASE_ADDRESS + LAYOUT.size - 2, BASE_ADDRESS + LAYOUT.size):
        with pytest.raises(WriteRejected) as info:
            decode_write(LAYOUT, PLATE, address, [0])
        assert info.value.code == ModbusError.ILLEGAL_ADDRESS


def test_write_spanning_a_read_only_point_stores_nothing() -> None:
    # MinRsvPct (RW) is followed by ChaState (R): the whole write must fail.
    with pytest.raises(WriteRejected):
        decode_write(LAYOUT, PLATE, addr(124, "MinRsvPct"), [30, 40])


@pytest.mark.parametrize(
    ("model_id", "name", "raw", "field", "expected"),
    [
        (124, "MinRsvPct", 35, "reserve_pct", 35.0),
        (802, "SoCRsvMin", 455, "reserve_pct", 45.5),
        (124, "ChaGriSet", 1, "grid_charging", True),
        (124, "StorCtl_Mod", 3, "storage_mode", 3),
        (124, "InWRte", u16(-50), "charge_rate_pct", -50.0),
        (124, "OutWRte", 80, "discharge_rate_pct", 80.0),
        (124, "InOutWRte_RvrtTms", 900, "revert_s", 900.0),
        (124, "WChaMax", 2500, "max_charge_w", 2500.0),
        (123, "WMaxLimPct", 0, "export_limit_pct", 0.0),
        (123, "WMaxLim_Ena", 1, "export_limit_enabled", True),
    ],
)
def test_good_writes_change_firmware(
    model_id: int, name: str, raw: int, field: str, expected: object
) -> None:
    fw = FirmwareSettings(max_charge_w=5000)
    writes = decode_write(LAYOUT, PLATE, addr(model_id, name), [raw])
    effect = apply_writes(fw, default_stored(PLATE), writes)
    assert getattr(effect.firmware, field) == expected
    assert effect.restart_revert == (name in {"StorCtl_Mod", "InWRte", "OutWRte", "InOutWRte_RvrtTms"})


def test_multi_register_write_of_rates() -> None:
    # OutWRte and InWRte are adjacent: one FC16 write sets both.
    assert addr(124, "InWRte") == addr(124, "OutWRte") + 1
    writes = decode_write(LAYOUT, PLATE, addr(124, "OutWRte"), [30, 40])
    effect = apply_writes(FirmwareSettings(max_charge_w=5000), {}, writes)
    assert (effect.firmware.discharge_rate_pct, effect.firmware.charge_rate_pct) == (30, 40)


def test_store_only_write_reads_back() -> None:
    writes = decode_write(LAYOUT, PLATE, addr(1, "DA"), [7])
    fw = FirmwareSettings(max_charge_w=5000)
    effect = apply_writes(fw, default_stored(PLATE), writes)
    assert effect.firmware == fw
    truth, _ = snapshot()
    image = encode_image(LAYOUT, PLATE, truth, fw, effect.stored)
    assert image[addr(1, "DA") - BASE_ADDRESS] == 7


def test_written_firmware_reads_back_through_the_image() -> None:
    truth, fw = snapshot(reserve_pct=42, grid_charging=True, export_limit_enabled=True)
    models = decode(LAYOUT, image_of(truth, fw))
    assert models[124].MinRsvPct.cvalue == 42
    assert models[802].SoCRsvMin.cvalue == pytest.approx(42)
    assert models[124].ChaGriSet.cvalue == 1
    assert models[123].WMaxLim_Ena.cvalue == 1
    assert truth.export_limit_w == pytest.approx(8000)
