"""A Huawei SUN2000 with a LUNA2000 battery and a power sensor, from Huawei's Modbus definitions.

From Huawei's "Solar Inverter Modbus Interface Definitions" (V3.0) and "SUN2000MA V100R001C00
Modbus Interface Definitions" (storage), every register a holding register (FC3 reads, FC6/FC16
writes), 32-bit values high word first:

- 30000 model (15 registers of ASCII), 30015 SN (10), 30035 software version (15), 30070 model
  ID, 30073 rated power Pn U32 W; 32064 input power I32 W, 32080 active power I32 W, 32089
  device status (0x0200 on-grid, 0x0203 off-grid);
- 37113 power sensor active power I32 W (+ feeding the grid), 37758 rated capacity U32 Wh,
  37760 SOC U16 0.1 %, 37762 running status, 37765 charge/discharge power I32 W (+ charging);
- 47075/47077 maximum charging/discharging power U32 W, 47083 forcible charge/discharge period
  (min, 0..1440), 47086 working mode (2 maximise self-consumption), 47087 charge from grid
  (0/1), 47088 grid charge cut-off SOC (0.1 %), 47100 forcible charge/discharge (0 stop,
  1 charge, 2 discharge), 47102 backup power SOC (0.1 %, 0..100 %), 47246 forcible setting mode
  (0 duration, 1 target SOC), 47247/47249 forcible charge/discharge power U32 W (up to the
  maximum charging/discharging power), 47415 active power control mode (0 unlimited, 5 zero
  export, 6 limited in W, 7 limited in %), 47416 maximum feed grid power I32 W.

Quirks played: one client at a time (a second connection is reset); requests in the first
`settle_s` after a connect are read and never answered; every answer takes `answer_delay_s`;
a read leaving the documented register blocks, a write to a read-only register or to half of a
32-bit register, and a value outside its documented range are refused (exception 2 or 3) and
change nothing. A forcible charge/discharge ends by itself when its period runs out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from simulator.config import HomeConfig, HuaweiSun2000Config
from simulator.devices.register_server import (
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    Table,
    Timing,
)
from simulator.devices.register_twin import RegisterTwin, join32, split32, text_registers
from simulator.faults import FaultPlan
from simulator.physics import FirmwareSettings, HomePhysics, with_export_limit_w

STATUS_ON_GRID, STATUS_OFF_GRID = 0x0200, 0x0203
_BLOCKS = ((30000, 30099), (32000, 32399), (37000, 37799), (47000, 47299), (47400, 47499))

# writable register -> (field, words, signed)
_WRITABLE: dict[int, tuple[str, int, bool]] = {
    47083: ("period_min", 1, False),
    47086: ("working_mode", 1, False),
    47087: ("charge_from_grid", 1, False),
    47088: ("grid_cutoff_soc", 1, False),
    47100: ("command", 1, False),
    47102: ("backup_soc", 1, False),
    47246: ("setting_mode", 1, False),
    47247: ("charge_power_w", 2, False),
    47249: ("discharge_power_w", 2, False),
    47415: ("control_mode", 1, False),
    47416: ("feed_grid_w", 2, True),
}


@dataclass(frozen=True, slots=True)
class HuaweiSettings:
    """The settings registers the twin stores."""

    period_min: int = 0
    working_mode: int = 2
    charge_from_grid: int = 0
    grid_cutoff_soc: int = 1000
    command: int = 0
    backup_soc: int = 200
    setting_mode: int = 0
    charge_power_w: int = 0
    discharge_power_w: int = 0
    control_mode: int = 0
    feed_grid_w: int = 0


def valid(settings: HuaweiSettings, home: HomeConfig) -> bool:
    """Whether every setting is within the documented range."""
    s = settings
    return (
        0 <= s.period_min <= 1440
        and s.working_mode in (0, 1, 2, 3, 4, 5)
        and s.charge_from_grid in (0, 1)
        and 200 <= s.grid_cutoff_soc <= 1000
        and s.command in (0, 1, 2)
        and 0 <= s.backup_soc <= 1000
        and s.setting_mode in (0, 1)
        and 0 <= s.charge_power_w <= home.battery_max_charge_w
        and 0 <= s.discharge_power_w <= home.battery_max_discharge_w
        and s.control_mode in (0, 1, 5, 6, 7)
        and -1000 <= s.feed_grid_w <= 1_000_000
    )


def firmware_for(settings: HuaweiSettings, base: FirmwareSettings, home: HomeConfig) -> FirmwareSettings:
    """The firmware behaviour the settings put in force."""
    s = settings
    fw = replace(base, reserve_pct=s.backup_soc / 10, grid_charging=bool(s.charge_from_grid))
    limit: float | None = None
    if s.control_mode == 5:
        limit = 0.0
    elif s.control_mode == 6:
        limit = max(0.0, float(s.feed_grid_w))
    fw = with_export_limit_w(fw, limit, home.inverter_max_w)
    revert_s = 60.0 * s.period_min
    if s.command == 1 and s.setting_mode == 0 and s.period_min > 0:
        pct = 100 * s.charge_power_w / home.battery_max_charge_w
        return replace(fw, storage_mode=1, charge_rate_pct=pct, revert_s=revert_s)
    if s.command == 2 and s.setting_mode == 0 and s.period_min > 0:
        pct = 100 * s.discharge_power_w / home.battery_max_discharge_w
        return replace(fw, storage_mode=2, discharge_rate_pct=pct, revert_s=revert_s)
    return replace(fw, storage_mode=0, revert_s=0.0)


class HuaweiSun2000Device(RegisterTwin):
    """A SUN2000 + LUNA2000 on Modbus TCP (SDongle or the inverter's access point)."""

    kind = "huawei_sun2000"

    def __init__(
        self, home: HomeConfig, config: HuaweiSun2000Config, physics: HomePhysics,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(
            config, physics=physics, faults=faults or FaultPlan(single_client=True),
            timing=Timing(settle_s=config.settle_s, answer_delay_s=config.answer_delay_s),
        )
        self.config = config
        self.home = home
        self.settings = HuaweiSettings()
        self.factory_reset()

    def blocks(self, table: Table) -> tuple[tuple[int, int], ...]:
        return _BLOCKS if table == "holding" else ()

    def read(self, table: Table, address: int, count: int) -> list[int] | int:
        if table == "input":
            return ILLEGAL_FUNCTION  # FC4 is not implemented: every register is a holding one
        return super().read(table, address, count)

    def registers(self, table: Table) -> Mapping[int, int]:
        self._follow_revert()
        t = self._physics.truth()
        cfg, home, s = self.config, self.home, self.settings
        regs: dict[int, int] = dict(enumerate(text_registers(cfg.model, 15), start=30000))
        regs.update(enumerate(text_registers(cfg.serial_number, 10), start=30015))
        regs.update(enumerate(text_registers(cfg.firmware, 15), start=30035))
        regs[30070] = 428
        regs[30073], regs[30074] = split32(round(home.inverter_max_w))
        regs[32064], regs[32065] = split32(round(t.solar_w))
        regs[32080], regs[32081] = split32(round(t.solar_w + t.battery_w))
        regs[32089] = STATUS_ON_GRID if t.grid_up else STATUS_OFF_GRID
        regs[37113], regs[37114] = split32(round(-t.grid_w))
        regs[37758], regs[37759] = split32(round(t.capacity_wh))
        regs[37760] = round(t.soc_pct * 10)
        regs[37762] = 2
        regs[37765], regs[37766] = split32(round(-t.battery_w))
        regs[47075], regs[47076] = split32(round(home.battery_max_charge_w))
        regs[47077], regs[47078] = split32(round(home.battery_max_discharge_w))
        for address, (name, words, _) in _WRITABLE.items():
            value = getattr(s, name)
            if words == 1:
                regs[address] = value
            else:
                regs[address], regs[address + 1] = split32(value)
        return regs

    def store(self, address: int, values: list[int]) -> int | None:
        self._follow_revert()
        changes: dict[str, int] = {}
        offset = 0
        while offset < len(values):
            spec = _WRITABLE.get(address + offset)
            if spec is None:
                return ILLEGAL_ADDRESS  # read-only, undefined, or the second half of a U32/I32
            name, words, signed = spec
            if offset + words > len(values):
                return ILLEGAL_VALUE  # half of a 32-bit register: one FC16 must carry both
            part = values[offset : offset + words]
            changes[name] = part[0] if words == 1 else join32(part[0], part[1], signed=signed)
            offset += words
        settings = replace(self.settings, **changes)
        if not valid(settings, self.home):
            return ILLEGAL_VALUE
        self.settings = settings
        restart = bool({"command", "period_min", "charge_power_w", "discharge_power_w"} & set(changes))
        self._apply(restart_revert=restart)
        return None

    def factory_reset(self) -> None:
        self.settings = HuaweiSettings()
        self._apply(restart_revert=True)

    def _follow_revert(self) -> None:
        # The inverter clears its forcible command when the period has run out.
        if self.settings.command != 0 and self._physics.firmware.storage_mode == 0:
            self.settings = replace(self.settings, command=0)

    def _apply(self, *, restart_revert: bool) -> None:
        base = FirmwareSettings(max_charge_w=self.home.battery_max_charge_w)
        self._physics.apply_firmware(
            firmware_for(self.settings, base, self.home), restart_revert=restart_revert
        )
