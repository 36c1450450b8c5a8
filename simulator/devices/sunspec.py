"""A SunSpec hybrid inverter served over Modbus TCP (pymodbus), backed by the home's physics.

Test helpers (on a started `SunSpecDevice`, see simulator/faults.py for the fault fields):

- `device.faults` is the live `FaultPlan` (`device.faults.half_open = True`);
  `await device.apply_faults(**fields)` changes it and returns once the listener matches it;
- `await device.drop_connections()` resets every client connection;
- `await device.reboot(wait=True)` drops connections, restores factory settings (reserve 20 %,
  grid charging off, no export limit, storage mode 0, stored points), keeps the port closed for
  `faults.reboot_s` real seconds, then listens on the same port again;
- `device.stats` counts connections accepted/refused/dropped and requests answered.
"""

from __future__ import annotations

import asyncio
from typing import cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulator.config import HomeConfig, SimDeviceConfig
from simulator.devices.modbus_front import FrontedDevice, ModbusFront
from simulator.devices.sunspec_map import (
    Key,
    Layout,
    Nameplate,
    WriteRejected,
    apply_writes,
    decode_write,
    default_layout,
    default_stored,
    encode_image,
    pv_layout,
)
from simulator.faults import FaultPlan
from simulator.physics import FirmwareSettings, HomePhysics


class SunSpecDevice(FrontedDevice):
    """One SunSpec device (models 1, 103, 120, 123, 124, 802, 203 at 40000) on a Modbus TCP port.

    Reads are answered from an image encoded from the physics at request time; writes are
    validated by the pure map, then change the firmware settings. FC3, FC6 and FC16. pymodbus
    listens on an internal loopback port; clients reach it through a `ModbusFront` on the public
    port, which plays the connection-level faults.

    Args:
        home: The home the device belongs to (ratings).
        config: Device identity, bind address and unit id.
        physics: The home's physics the device reports and controls.
        faults: Fault plan applied in the access hook; None = well-behaved.
    """

    kind = "sunspec"

    def __init__(
        self,
        home: HomeConfig,
        config: SimDeviceConfig,
        physics: HomePhysics,
        faults: FaultPlan | None = None,
    ) -> None:
        self.id = config.id
        self.config = config
        self.layout: Layout = default_layout() if config.profile == "hybrid" else pv_layout()
        self.nameplate = Nameplate.from_config(home, config)
        self._physics = physics
        self._stored: dict[Key, float] = default_stored(self.nameplate)
        self._server: ModbusTcpServer | None = None
        self._front = ModbusFront(config.host, config.port, faults or FaultPlan(), f"sunspec-{config.id}")
        self.host = config.host
        self.unit_id = config.unit_id

    def factory_reset(self) -> None:
        """Restore the factory settings: firmware defaults and the stored writable points."""
        self._stored = default_stored(self.nameplate)
        self._physics.apply_firmware(
            FirmwareSettings(max_charge_w=self._physics.config.battery_max_charge_w),
            restart_revert=True,
        )

    def image(self) -> list[int]:
        """The register image for the current physics state, from the "SunS" marker on."""
        return encode_image(
            self.layout, self.nameplate, self._physics.truth(), self._physics.firmware, self._stored
        )

    def model_address(self, model_id: int) -> int:
        """PDU address of a model's ID register."""
        return self.layout.model_address(model_id)

    async def start(self) -> None:
        """Listen on host/port; with port 0, `port` then holds the bound one.

        A restart after `stop()` binds the same public port again, as a rebooted device would.
        """
        device = SimDevice(
            id=self.unit_id,
            simdata=[SimData(self.layout.base, values=self.image(), datatype=DataType.REGISTERS)],
            action=self._action,
        )
        server = ModbusTcpServer(device, address=(self.config.host, 0))
        await server.serve_forever(background=True)
        self._server = server
        try:
            # pymodbus keeps the asyncio.Server from loop.create_server as its transport.
            listener = cast("asyncio.Server", server.transport)
            await self._front.start(int(listener.sockets[0].getsockname()[1]))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening and drop client connections (safe to call twice)."""
        await self._front.stop()
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def read_registers(self, address: int, count: int) -> list[int]:
        """Holding registers as the server would answer FC3 now (faults not applied)."""
        if self._server is None:
            offset = address - self.layout.base
            image = self.image()
            if offset < 0 or offset + count > len(image):
                raise ValueError(f"registers {address}..{address + count - 1} outside the map")
            return image[offset : offset + count]
        values = await self._server.async_getValues(self.unit_id, 3, address, count)
        return [int(v) for v in values]

    async def _action(  # noqa: PLR0917 - signature fixed by pymodbus SimDevice
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus access hook: refresh on reads, or validate and apply writes (unless ignored).

        Connection and timing faults are the front's job; only `ignore_writes` acts here.
        """
        del function_code
        if set_values is None:
            registers[:] = self.image()
            return None
        values = [int(v) for v in set_values]
        offset = address - start_address
        if self.faults.ignore_writes:
            set_values[:] = registers[offset : offset + count]  # type: ignore[assignment]
            return None
        try:
            writes = decode_write(self.layout, self.nameplate, address, values)
        except WriteRejected as exc:
            return ExcCodes(int(exc.code))
        effect = apply_writes(self._physics.firmware, self._stored, writes)
        self._stored = effect.stored
        self._physics.apply_firmware(effect.firmware, restart_revert=effect.restart_revert)
        return None
