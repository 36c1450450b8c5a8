"""A SolarEdge StorEdge inverter twin: SunSpec readings and the 0xE000 storage-control block.

The register map and its rules are in `simulator/devices/solaredge_map.py` (from SolarEdge's
SunSpec and StorEdge remote-control technical notes). This device adds what needs state and
time: one client at a time (the fault plan starts with ``single_client``), the remote command
that reverts to the default mode when its timeout lapses in simulated time, and the firmware
the block puts in force in the home's physics. FC3 only: an FC4 read answers exception 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from simulator.config import HomeConfig, SolarEdgeStorEdgeConfig
from simulator.devices.register_server import ILLEGAL_ADDRESS, Table
from simulator.devices.register_twin import RegisterTwin
from simulator.devices.solaredge_map import (
    BATTERY_BASE,
    BATTERY_LENGTH,
    END_ADDRESS,
    STORAGE_BASE,
    STORAGE_LENGTH,
    SUNSPEC_BASE,
    Exc,
    StorEdgePlate,
    StorEdgeSettings,
    command_deadline,
    firmware_for,
    read_registers,
    write_registers,
)
from simulator.faults import FaultPlan
from simulator.physics import HomePhysics

_BLOCKS = (
    (SUNSPEC_BASE, END_ADDRESS + 1),
    (STORAGE_BASE, STORAGE_BASE + STORAGE_LENGTH - 1),
    (BATTERY_BASE, BATTERY_BASE + BATTERY_LENGTH - 1),
)


class SolarEdgeStorEdgeDevice(RegisterTwin):
    """A SolarEdge StorEdge (inverter, battery, site meter) on Modbus TCP.

    Test helpers: ``settings`` is the 0xE000 block as stored; ``command_until`` the simulated
    instant the running remote command reverts (None: none running).
    """

    kind = "solaredge_storedge"

    def __init__(
        self, home: HomeConfig, config: SolarEdgeStorEdgeConfig, physics: HomePhysics,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(config, physics=physics,
                         faults=faults or FaultPlan(single_client=config.single_client))
        self.config = config
        self.plate = StorEdgePlate(
            manufacturer="SolarEdge", model=config.model, serial_number=config.serial_number,
            firmware=config.firmware, battery_model=config.battery_model,
            battery_serial=config.battery_serial, inverter_max_w=home.inverter_max_w,
            capacity_wh=home.battery_capacity_wh, max_charge_w=home.battery_max_charge_w,
            max_discharge_w=home.battery_max_discharge_w,
        )  # fmt: skip
        self.settings = StorEdgeSettings()
        self.command_until: datetime | None = None
        self.factory_reset()

    def blocks(self, table: Table) -> tuple[tuple[int, int], ...]:
        return _BLOCKS if table == "holding" else ()

    def registers(self, table: Table) -> Mapping[int, int]:
        image: dict[int, int] = {}
        for first, last in self.blocks(table):
            regs = self.read(table, first, last - first + 1)
            if isinstance(regs, list):
                image.update(enumerate(regs, start=first))
        return image

    def read(self, table: Table, address: int, count: int) -> list[int] | int:
        if table != "holding":
            return ILLEGAL_ADDRESS
        self._expire()
        result = read_registers(self.plate, self.settings, self._physics.truth(), address, count)
        return int(result) if isinstance(result, Exc) else result

    def store(self, address: int, values: list[int]) -> int | None:
        self._expire()
        result = write_registers(self.plate, self.settings, address, values)
        if isinstance(result, Exc):
            return int(result)
        self.settings = result.settings
        if result.command_sent:
            self.command_until = command_deadline(self.settings, self._physics.at)
        self._apply(restart=result.command_sent)
        return None

    def factory_reset(self) -> None:
        self.settings = StorEdgeSettings()
        self.command_until = None
        self._apply(restart=True)

    def _expire(self) -> None:
        """A remote command whose timeout lapsed gives way to the default mode."""
        until = self.command_until
        if until is not None and self._physics.at >= until:
            self.command_until = None
            self.settings = replace(self.settings, command_mode=self.settings.default_mode)
            self._apply(restart=True)

    def _apply(self, *, restart: bool) -> None:
        firmware = firmware_for(self.settings, self.plate, timed=self.command_until is not None)
        self._physics.apply_firmware(firmware, restart_revert=restart)
