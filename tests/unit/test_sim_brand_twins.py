"""The brand twins' documented behaviour, request by request (pure: no sockets)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from simulator.config import HomeConfig, HuaweiSun2000Config, SungrowShConfig
from simulator.devices.huawei_sun2000 import HuaweiSun2000Device
from simulator.devices.register_server import answer
from simulator.devices.sungrow_sh import SungrowShDevice
from simulator.physics import HomePhysics

START = datetime(2026, 6, 21, 12, tzinfo=UTC)


def home(device: SungrowShConfig | HuaweiSun2000Config) -> tuple[HomeConfig, HomePhysics]:
    config = HomeConfig(id="h", devices=[device])
    return config, HomePhysics(config, START)


def sungrow() -> tuple[SungrowShDevice, HomePhysics]:
    cfg = SungrowShConfig(id="d", kind="sungrow_sh")
    hc, physics = home(cfg)
    return SungrowShDevice(hc, cfg, physics), physics


def huawei() -> tuple[HuaweiSun2000Device, HomePhysics]:
    cfg = HuaweiSun2000Config(id="d", kind="huawei_sun2000")
    hc, physics = home(cfg)
    return HuaweiSun2000Device(hc, cfg, physics), physics


def request(function: int, body: bytes, unit: int = 1) -> bytes:
    pdu = bytes((function,)) + body
    return struct.pack(">HHH", 7, 0, 1 + len(pdu)) + bytes((unit,)) + pdu


@pytest.mark.parametrize(("frame", "reply_pdu"), [
    (request(4, struct.pack(">HH", 4999, 1)), bytes((4, 2, 0x0E, 0x03))),  # device type code
    (request(3, struct.pack(">HH", 4999, 1)), bytes((0x83, 2))),  # running data is not FC3
    (request(4, struct.pack(">HH", 13099, 1)), bytes((0x84, 2))),  # controls are not FC4
    (request(6, struct.pack(">HH", 13049, 1)), bytes((0x86, 3))),  # EMS mode 1 is undocumented
    (request(6, struct.pack(">HH", 13050, 0xAB)), bytes((0x86, 3))),  # nor is command 0xAB
    (request(6, struct.pack(">HH", 13099, 101)), bytes((0x86, 3))),  # reserve 0..100 %
    (request(6, struct.pack(">HH", 13060, 1)), bytes((0x86, 2))),  # a reserved register
    (request(6, struct.pack(">HH", 13099, 40)), bytes((6,)) + struct.pack(">HH", 13099, 40)),
    (request(4, struct.pack(">HH", 4999, 1), unit=2), bytes((0x84, 11))),  # another unit id
    (request(5, struct.pack(">HH", 0, 0xFF00)), bytes((0x85, 1))),  # coils: not implemented
])  # fmt: skip
def test_sungrow_answers_as_documented(frame: bytes, reply_pdu: bytes) -> None:
    device, _ = sungrow()
    assert answer(device, 1, frame)[7:] == reply_pdu


def test_sungrow_forced_mode_drives_the_physics_and_idle_releases_it() -> None:
    device, physics = sungrow()
    assert device.write(13051, [2500]) is None
    assert device.write(13049, [2, 0xAA]) is None  # EMS forced + charge in one FC16
    assert physics.truth().battery_command_w == -2500
    assert device.write(13050, [0xCC]) is None
    assert physics.truth().battery_command_w is None
    image = device.registers("input")
    assert image[13021] == round(abs(physics.truth().battery_w))  # unsigned
    assert device.write(13086, [0xAA]) is None
    assert physics.truth().export_limit_w == 0  # limit register still 0 W


def test_sungrow_32_bit_values_send_the_low_word_first() -> None:
    device, physics = sungrow()
    regs = device.registers("input")
    solar = round(physics.truth().solar_w)
    assert (regs[5016], regs[5017]) == (solar & 0xFFFF, solar >> 16)


@pytest.mark.parametrize(("address", "values", "code"), [
    (47247, [0], 3),  # half of the U32 forcible charge power
    (47248, [0], 2),  # the second half alone
    (47247, [0, 60000], 3),  # 60 kW: beyond the battery's maximum charging power
    (47102, [1001], 3),  # backup power SOC 100.1 %
    (47100, [3], 3),  # forcible command 3 is undocumented
    (37760, [500], 2),  # SOC is read-only
    (47087, [1, 100], 3),  # with a grid charge cut-off of 10 %: below its 20 % minimum
])  # fmt: skip
def test_huawei_refuses_writes_outside_its_documentation(address: int, values: list[int], code: int) -> None:
    device, physics = huawei()
    before = physics.firmware
    assert device.write(address, values) == code
    assert physics.firmware == before  # refused: nothing changed


def test_huawei_reads_only_holding_registers_within_its_blocks() -> None:
    device, _ = huawei()
    assert answer(device, 1, request(4, struct.pack(">HH", 37760, 1)))[7:] == bytes((0x84, 1))
    assert answer(device, 1, request(3, struct.pack(">HH", 40000, 2)))[7:] == bytes((0x83, 2))
    reply = answer(device, 1, request(3, struct.pack(">HH", 30000, 15)))
    assert reply[9:].rstrip(b"\x00").decode() == "SUN2000-10KTL-M1"


def test_huawei_forcible_charge_ends_when_its_period_runs_out() -> None:
    device, physics = huawei()
    assert device.write(47247, [0, 2000]) is None  # one FC16 for the U32
    assert device.write(47083, [2]) is None  # 2 minutes
    assert device.write(47087, [1]) is None  # charge from grid
    assert device.write(47100, [1]) is None
    assert physics.truth().battery_command_w == -2000
    physics.step(119)
    assert device.registers("holding")[47100] == 1
    physics.step(2)
    assert physics.truth().battery_command_w is None
    assert device.registers("holding")[47100] == 0  # the inverter cleared its command


def test_a_reboot_restores_factory_settings() -> None:
    device, physics = huawei()
    assert device.write(47102, [550]) is None
    assert physics.truth().reserve_pct == 55
    device.factory_reset()
    assert physics.truth().reserve_pct == 20
