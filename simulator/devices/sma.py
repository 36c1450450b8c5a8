"""An SMA Sunny Boy Storage twin: SMA Modbus profile registers over the home's physics.

The register map and its rules are in `simulator/devices/sma_map.py` (from SMA's Modbus
interface documents). This device serves it on unit id 3 (FC3 and FC4 read the same registers),
keeps the BMS registers a client wrote and puts them in force in the physics. The twin's own
minimum state of charge (``min_soc_pct``, an installer setting, not on Modbus) is the reserve
the physics keeps while the grid is up.
"""

from __future__ import annotations

from collections.abc import Mapping

from simulator.config import HomeConfig, SmaSbsConfig
from simulator.devices.register_server import Table
from simulator.devices.register_twin import RegisterTwin
from simulator.devices.sma_map import (
    REGISTERS,
    BmsSettings,
    Exc,
    SmaPlate,
    factory_settings,
    firmware_for,
    read_registers,
    write_registers,
)
from simulator.faults import FaultPlan
from simulator.physics import HomePhysics


def _runs() -> tuple[tuple[int, int], ...]:
    """Contiguous runs of documented registers (first, last): reads may not cross a gap."""
    runs: list[tuple[int, int]] = []
    for reg in sorted(REGISTERS, key=lambda r: r.address):
        last = reg.address + reg.size - 1
        if runs and runs[-1][1] + 1 == reg.address:
            runs[-1] = (runs[-1][0], last)
        else:
            runs.append((reg.address, last))
    return tuple(runs)


_BLOCKS = _runs()


class SmaSbsDevice(RegisterTwin):
    """An SMA Sunny Boy Storage on Modbus TCP (unit id 3 by default).

    Test helper: ``settings`` holds the BMS registers as stored.
    """

    kind = "sma_sbs"

    def __init__(
        self, home: HomeConfig, config: SmaSbsConfig, physics: HomePhysics,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(config, physics=physics, faults=faults or FaultPlan())
        self.config = config
        self.plate = SmaPlate(
            device_type=config.device_type, serial_number=config.serial_number,
            firmware=config.firmware, capacity_wh=home.battery_capacity_wh,
            max_charge_w=home.battery_max_charge_w, max_discharge_w=home.battery_max_discharge_w,
            energy_meter=config.energy_meter,
        )  # fmt: skip
        self.settings: BmsSettings = factory_settings(self.plate)
        self.factory_reset()

    def blocks(self, table: Table) -> tuple[tuple[int, int], ...]:
        del table  # the SMA Modbus profile answers FC3 and FC4 alike
        return _BLOCKS

    def registers(self, table: Table) -> Mapping[int, int]:
        image: dict[int, int] = {}
        for first, last in _BLOCKS:
            regs = self.read(table, first, last - first + 1)
            if isinstance(regs, list):
                image.update(enumerate(regs, start=first))
        return image

    def read(self, table: Table, address: int, count: int) -> list[int] | int:
        del table
        result = read_registers(self.plate, self.settings, self._physics.truth(), address, count)
        return int(result) if isinstance(result, Exc) else result

    def store(self, address: int, values: list[int]) -> int | None:
        result = write_registers(self.plate, self.settings, address, values)
        if isinstance(result, Exc):
            return int(result)
        self.settings = result
        self._apply()
        return None

    def factory_reset(self) -> None:
        self.settings = factory_settings(self.plate)
        self._apply()

    def _apply(self) -> None:
        firmware = firmware_for(self.settings, self.plate, self.config.min_soc_pct)
        self._physics.apply_firmware(firmware, restart_revert=True)
