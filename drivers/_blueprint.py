"""Copy-me driver skeleton: a one-register Modbus grid meter showing every part a driver needs.

To add a device family: copy this file to ``drivers/<family>/driver.py``, move its options model
to ``drivers/<family>/options.py`` (no transport imports: the config validates with it), put the
pure register codec in ``drivers/<family>/codec.py`` (no I/O, tested with register tables),
register the class in ``drivers/registry.py`` ``DRIVERS`` and the options in
``drivers/options.py`` ``DRIVER_OPTIONS``, and give it a simulated twin in
``tests/integration/test_drivers_all.py`` (the contract test runs every registered driver
against it). A reading that only one maker's convention defines is an option that is off by
default. docs/drivers.md walks through it; this module is type-checked but not registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.base import Capability, DeviceInfo, DeviceTelemetry, Setpoints
from drivers.transport import ModbusEndpoint, Priority, Transports

if TYPE_CHECKING:
    from drivers.registry import DriverClass

__all__ = ["BlueprintDriver", "BlueprintOptions", "decode_grid_w"]


class BlueprintOptions(BaseModel):
    """The device's configuration keys; ``extra="forbid"`` makes a typo a config error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255)
    timeout_s: float = Field(1.0, gt=0)
    grid_w_address: int = Field(0, ge=0, le=65535)  # int16, W, + importing
    meter_sign: int = Field(1, ge=-1, le=1)


def decode_grid_w(registers: Sequence[int], *, sign: int = 1) -> float | None:
    """Pure codec: one int16 register -> grid W (+ importing); 0x8000 means "not available"."""
    (raw,) = registers
    if raw == 0x8000:
        return None
    return float((raw - 0x10000 if raw >= 0x8000 else raw) * sign)


class BlueprintDriver:
    """A grid meter behind a shared Modbus TCP endpoint; takes no setpoints."""

    options_model: ClassVar[type[BlueprintOptions]] = BlueprintOptions

    def __init__(self, name: str, options: BlueprintOptions, transports: Transports) -> None:
        self.name = name
        self.options = options
        # Declare only what the device really does: site_info is derived from it.
        self.capabilities: frozenset[Capability] = frozenset({Capability.GRID_METER})
        self._transports = transports
        self._endpoint: ModbusEndpoint | None = None

    async def connect(self) -> DeviceInfo:
        """Join the shared endpoint and prove the device answers (DeviceUnreachable if not)."""
        if self._endpoint is None:
            self._endpoint = self._transports.modbus.acquire(self.options.host, self.options.port)
        await self._read_registers()
        return DeviceInfo(
            manufacturer="Blueprint", model="one-register meter", serial_number="", firmware_version=""
        )

    async def close(self) -> None:
        """Give back this driver's share of the connection."""
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            await self._transports.modbus.release(endpoint)

    async def read(self) -> DeviceTelemetry:
        """One FC3 read, decoded by the pure codec."""
        registers = await self._read_registers()
        grid_w = decode_grid_w(registers, sign=self.options.meter_sign)
        return DeviceTelemetry(taken_at=datetime.now(UTC), grid_w=grid_w)

    async def apply(self, setpoints: Setpoints) -> None:
        """No setpoint is supported (see ``capabilities``): nothing to write or confirm.

        A driver that writes sends ``Priority.COMMAND`` writes of only what differs, then reads
        back until equal or raises ``NotConfirmed`` after its confirm timeout.
        """

    async def read_back(self) -> Setpoints:
        """Neutral setpoints: this device holds none."""
        return Setpoints(reserve_pct=0, grid_charging=False)

    async def _read_registers(self) -> list[int]:
        if self._endpoint is None:
            self._endpoint = self._transports.modbus.acquire(self.options.host, self.options.port)
        # Transport errors arrive typed (DeviceUnreachable / DeviceRejected): never isError().
        return await self._endpoint.read_holding(
            self.options.unit_id,
            self.options.grid_w_address,
            1,
            priority=Priority.POLL,
            timeout_s=self.options.timeout_s,
        )


if TYPE_CHECKING:  # mypy proves the class fits the registry's protocol; nothing runs
    _fits_registry: DriverClass = BlueprintDriver
