"""Pure parts of the SolarEdge and SMA twins' register maps: encodings, scale factors, write rules."""

from __future__ import annotations

import struct

import pytest

from simulator.devices import sma_map, solaredge_map


@pytest.mark.parametrize(("watts", "sf"), [
    (0.0, -2), (150.0, -2), (327.67, -2), (327.7, -1), (3276.7, -1), (5000.0, 0),
    (-5000.0, 0), (32767.0, 0), (40000.0, 1),
])
def test_solaredge_picks_the_finest_power_scale_factor(watts: float, sf: int) -> None:
    assert solaredge_map._power_sf(watts) == sf


@pytest.mark.parametrize("value", [0.0, 20.0, 45.5, 5000.0, -1.25])
def test_solaredge_floats_travel_low_word_first(value: float) -> None:
    words = solaredge_map.f32_words(value)
    assert solaredge_map.words_f32(words) == pytest.approx(value)
    raw = int.from_bytes(struct.pack(">f", value), "big")
    assert words == [raw & 0xFFFF, raw >> 16]


@pytest.mark.parametrize(("version", "word"), [
    ("3.20.14", 0x03140E04), ("1", 0x01000004), ("2.5", 0x02050004),
])
def test_sma_software_package(version: str, word: int) -> None:
    assert sma_map.software_package(version) == word


PLATE = sma_map.SmaPlate(device_type=9326, serial_number=1, firmware="1.0.0", capacity_wh=10_000,
                         max_charge_w=5000, max_discharge_w=5000, energy_meter=True)


@pytest.mark.parametrize(("address", "registers", "outcome"), [
    (40236, [0, 2289], "ok"),
    (40236, [2289], sma_map.Exc.ILLEGAL_ADDRESS),  # half a U32
    (40237, [0, 2289], sma_map.Exc.ILLEGAL_ADDRESS),  # starts inside the value
    (40236, [0, 1], sma_map.Exc.ILLEGAL_VALUE),
    (40795, [0, 5000], "ok"),
    (40795, [0, 5001], sma_map.Exc.ILLEGAL_VALUE),
    (40801, [0xFFFF, 0xF830], "ok"),  # S32 -2000
    (40801, [0x8000, 0], sma_map.Exc.ILLEGAL_VALUE),  # the S32 NaN
    (30845, [0, 50], sma_map.Exc.ILLEGAL_ADDRESS),
])
def test_sma_write_rules(address: int, registers: list[int], outcome: object) -> None:
    result = sma_map.write_registers(PLATE, sma_map.factory_settings(PLATE), address, registers)
    if outcome == "ok":
        assert isinstance(result, sma_map.BmsSettings)
    else:
        assert result == outcome
