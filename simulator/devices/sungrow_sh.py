"""A Sungrow SH-RT hybrid inverter twin, written from Sungrow's hybrid inverter Modbus protocol.

From "Communication Protocol of Residential Hybrid Inverter" (V1.0.23), register numbers as the
document prints them (1-based) with the PDU address in brackets:

- running data in **input registers (FC4)**: 4990-4999 (4989) serial number, 5000 (4999) device
  type code, 5001 (5000) nominal output power in 0.1 kW, 5017-5018 (5016) total DC power U32,
  13000 (12999) system state (0x0040 running, 0x1000 off-grid mode), 13001 (13000) running state
  bits (bit 1 battery charging, bit 2 discharging, bit 4 feeding the grid, bit 5 importing),
  13008 (13007) load power S32, 13010 (13009) export power S32 (negative = import), 13022 (13021)
  battery power U16 without sign, 13023 (13022) battery level 0.1 %, 13024 (13023) state of
  health 0.1 %, 13037 (13036) total import energy 0.1 kWh, 13039 (13038) battery capacity
  0.1 kWh, 13046 (13045) total export energy 0.1 kWh. 32-bit values send their **low word first**.
- controls in **holding registers (FC3/FC6/FC16)**: 13050 (13049) EMS mode (0 self-consumption,
  2 forced mode, 3 external EMS, 4 VPP), 13051 (13050) charge/discharge command (0xAA charge,
  0xBB discharge, 0xCC stop), 13052 (13051) charge/discharge power W, 13058/13059 (13057/13058)
  max/min SoC 0.1 %, 13074 (13073) export power limit W, 13087 (13086) export power limitation
  (0xAA enable, 0x55 disable), 13100 (13099) reserved SoC for backup %.

Quirks played: an FC3 read of a running-data register or an FC4 read of a control answers
"illegal address"; reserved registers inside a block read 0; a write of a value outside its
documented set or range, or to a register the block does not define, is refused with exception
3 or 2 and changes nothing. Forced mode has no timer: the command holds until replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from simulator.config import HomeConfig, SungrowShConfig
from simulator.devices.register_server import ILLEGAL_ADDRESS, ILLEGAL_VALUE, Table
from simulator.devices.register_twin import RegisterTwin, split32, text_registers
from simulator.faults import FaultPlan
from simulator.physics import FirmwareSettings, HomePhysics, with_export_limit_w

EMS_SELF_CONSUMPTION, EMS_FORCED = 0, 2
EMS_MODES = frozenset({0, 2, 3, 4})
CMD_CHARGE, CMD_DISCHARGE, CMD_STOP = 0xAA, 0xBB, 0xCC
ENABLE, DISABLE = 0xAA, 0x55
SYSTEM_RUNNING, SYSTEM_OFF_GRID = 0x0040, 0x1000

_INPUT_BLOCKS = ((4989, 5050), (12999, 13047))
_HOLDING_BLOCKS = ((13049, 13099),)
EMS_MODE, FORCED_CMD, FORCED_POWER = 13049, 13050, 13051
MAX_SOC, MIN_SOC = 13057, 13058
EXPORT_LIMIT, EXPORT_MODE, BACKUP_SOC = 13073, 13086, 13099
#: The largest charge/discharge power and export limit the register takes, in W.
MAX_POWER_W = 10600


@dataclass(frozen=True, slots=True)
class SungrowControls:
    """The holding registers the twin stores (what a client wrote)."""

    ems_mode: int = EMS_SELF_CONSUMPTION
    command: int = CMD_STOP
    power_w: int = 0
    max_soc: int = 1000
    min_soc: int = 50
    export_limit_w: int = 0
    export_mode: int = DISABLE
    backup_soc: int = 20

    def holding(self) -> dict[int, int]:
        """The registers as they read."""
        return {EMS_MODE: self.ems_mode, FORCED_CMD: self.command, FORCED_POWER: self.power_w,
                MAX_SOC: self.max_soc, MIN_SOC: self.min_soc, EXPORT_LIMIT: self.export_limit_w,
                EXPORT_MODE: self.export_mode, BACKUP_SOC: self.backup_soc}  # fmt: skip


_FIELDS = {EMS_MODE: "ems_mode", FORCED_CMD: "command", FORCED_POWER: "power_w", MAX_SOC: "max_soc",
           MIN_SOC: "min_soc", EXPORT_LIMIT: "export_limit_w", EXPORT_MODE: "export_mode",
           BACKUP_SOC: "backup_soc"}  # fmt: skip


def valid(address: int, value: int) -> bool:
    """Whether the document allows ``value`` in the holding register at ``address``."""
    checks = {
        EMS_MODE: value in EMS_MODES,
        FORCED_CMD: value in (CMD_CHARGE, CMD_DISCHARGE, CMD_STOP),
        FORCED_POWER: 0 <= value <= MAX_POWER_W,
        MAX_SOC: 500 <= value <= 1000,
        MIN_SOC: 0 <= value <= 500,
        EXPORT_LIMIT: 0 <= value <= MAX_POWER_W,
        EXPORT_MODE: value in (ENABLE, DISABLE),
        BACKUP_SOC: 0 <= value <= 100,
    }
    return checks.get(address, False)


def firmware_for(controls: SungrowControls, base: FirmwareSettings, home: HomeConfig) -> FirmwareSettings:
    """The firmware behaviour the stored registers put in force (forced mode charges from the grid too)."""
    fw = replace(base, reserve_pct=float(controls.backup_soc))
    fw = with_export_limit_w(
        fw, controls.export_limit_w if controls.export_mode == ENABLE else None, home.inverter_max_w
    )
    forced = controls.ems_mode == EMS_FORCED
    if forced and controls.command == CMD_CHARGE:
        pct = 100 * controls.power_w / home.battery_max_charge_w
        return replace(fw, storage_mode=1, charge_rate_pct=pct, revert_s=0.0, grid_charging=True)
    if forced and controls.command == CMD_DISCHARGE:
        pct = 100 * controls.power_w / home.battery_max_discharge_w
        return replace(fw, storage_mode=2, discharge_rate_pct=pct, revert_s=0.0, grid_charging=False)
    return replace(fw, storage_mode=0, revert_s=0.0, grid_charging=False)


class SungrowShDevice(RegisterTwin):
    """A Sungrow SH-RT on Modbus TCP (its LAN port), backed by the home's physics."""

    kind = "sungrow_sh"

    def __init__(
        self, home: HomeConfig, config: SungrowShConfig, physics: HomePhysics,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(config, physics=physics, faults=faults or FaultPlan())
        self.config = config
        self.home = home
        self.controls = SungrowControls()
        self.factory_reset()

    def blocks(self, table: Table) -> tuple[tuple[int, int], ...]:
        return _INPUT_BLOCKS if table == "input" else _HOLDING_BLOCKS

    def registers(self, table: Table) -> Mapping[int, int]:
        if table == "holding":
            return self.controls.holding()
        return self.input_registers()

    def input_registers(self) -> dict[int, int]:
        """The running-data image now."""
        t = self._physics.truth()
        cfg = self.config
        regs: dict[int, int] = dict(enumerate(text_registers(cfg.serial_number, 10), start=4989))
        regs[4999] = cfg.device_type_code
        regs[5000] = round(self.home.inverter_max_w / 100)
        regs[5016], regs[5017] = split32(round(t.solar_w), low_word_first=True)
        state = 0
        if t.solar_w > 0:
            state |= 1
        if t.battery_w < 0:
            state |= 1 << 1
        elif t.battery_w > 0:
            state |= 1 << 2
        if t.grid_w < 0:
            state |= 1 << 4
        elif t.grid_w > 0:
            state |= 1 << 5
        regs[12999] = SYSTEM_RUNNING if t.grid_up else SYSTEM_OFF_GRID
        regs[13000] = state
        regs[13007], regs[13008] = split32(round(t.load_w), low_word_first=True)
        regs[13009], regs[13010] = split32(round(-t.grid_w), low_word_first=True)
        regs[13021] = min(0xFFFF, round(abs(t.battery_w)))
        regs[13022] = round(t.soc_pct * 10)
        regs[13023] = 1000
        regs[13036], regs[13037] = split32(round(t.grid_import_wh / 100), low_word_first=True)
        regs[13038] = round(t.capacity_wh / 100)
        regs[13045], regs[13046] = split32(round(t.grid_export_wh / 100), low_word_first=True)
        return regs

    def store(self, address: int, values: list[int]) -> int | None:
        changes: dict[str, int] = {}
        for offset, value in enumerate(values):
            name = _FIELDS.get(address + offset)
            if name is None:
                return ILLEGAL_ADDRESS
            if not valid(address + offset, value):
                return ILLEGAL_VALUE
            changes[name] = value
        self.controls = replace(self.controls, **changes)
        self._apply()
        return None

    def factory_reset(self) -> None:
        self.controls = SungrowControls()
        self._apply()

    def _apply(self) -> None:
        base = FirmwareSettings(max_charge_w=self.home.battery_max_charge_w)
        self._physics.apply_firmware(
            firmware_for(self.controls, base, self.home), restart_revert=True
        )
