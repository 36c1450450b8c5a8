"""A SunSpec hybrid inverter served over Modbus TCP (pymodbus), backed by the home's physics."""

from __future__ import annotations

import asyncio
import contextvars
from typing import cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulator.config import HomeConfig, SimDeviceConfig
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
)
from simulator.faults import FaultPlan
from simulator.physics import HomePhysics

_WRITE_FCS = frozenset({6, 16})
# Set while the simulator itself reads its image, so faults meant for clients do not apply.
_internal_read = contextvars.ContextVar("internal_read", default=False)


class SunSpecDevice:
    """One SunSpec device (models 1, 103, 120, 123, 124, 802, 203 at 40000) on a Modbus TCP port.

    Reads are answered from an image encoded from the physics at request time; writes are
    validated by the pure map, then change the firmware settings. FC3, FC6 and FC16.

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
        self.faults = faults or FaultPlan()
        self.layout: Layout = default_layout()
        self.nameplate = Nameplate.from_config(home, config)
        self._physics = physics
        self._stored: dict[Key, float] = default_stored(self.nameplate)
        self._server: ModbusTcpServer | None = None
        self.host = config.host
        self.port = config.port
        self.unit_id = config.unit_id

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

        A restart after `stop()` binds the same port again, as a rebooted device would.
        """
        device = SimDevice(
            id=self.unit_id,
            simdata=[SimData(self.layout.base, values=self.image(), datatype=DataType.REGISTERS)],
            action=self._action,
        )
        server = ModbusTcpServer(device, address=(self.config.host, self.port))
        await server.serve_forever(background=True)
        self._server = server
        # pymodbus keeps the asyncio.Server from loop.create_server as its transport.
        listener = cast("asyncio.Server", server.transport)
        self.port = int(listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and drop client connections."""
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
        token = _internal_read.set(True)
        try:
            values = await self._server.async_getValues(self.unit_id, 3, address, count)
        finally:
            _internal_read.reset(token)
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
        """pymodbus access hook: faults, then refresh on reads or validate and apply on writes."""
        internal = _internal_read.get()
        plan = self.faults
        # pymodbus calls the hook a second time (set_values=None) to build an FC6 echo: that call
        # is part of the write, not a new request, so it gets no second delay.
        if (
            plan.delay_s > 0
            and not internal
            and not (set_values is None and function_code in _WRITE_FCS)
        ):
            await asyncio.sleep(plan.delay_s)
        if set_values is None:
            registers[:] = self.image()
            return None
        values = [int(v) for v in set_values]
        offset = address - start_address
        if plan.ignore_writes and not internal:
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
