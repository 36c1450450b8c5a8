"""The shared body of the brand twins: a register map over the physics behind a faulting Modbus TCP port.

A twin subclass says which registers exist (`blocks`), what they hold now (`registers`), how a
write changes the firmware (`store`) and what a factory reset restores (`factory_reset`). This
base serves them through a `RegisterServer` (the brand's timing) behind a `ModbusFront` (the fault
plan, as on the SunSpec device), and plays `ignore_writes` itself.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Protocol

from simulator.devices.modbus_front import FrontedDevice, ModbusFront
from simulator.devices.register_server import ILLEGAL_ADDRESS, RegisterServer, Table, Timing
from simulator.faults import FaultPlan
from simulator.physics import HomePhysics


class TwinEndpoint(Protocol):
    """What every brand twin's config says about its Modbus endpoint."""

    @property
    def id(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def unit_id(self) -> int: ...
    @property
    def answer_delay_s(self) -> float: ...


class RegisterTwin(FrontedDevice):
    """One brand twin on a Modbus TCP port.

    Args:
        config: The twin's config: its id within the home, loopback host, public port
            (0 = ephemeral), unit id and answer delay.
        physics: The home's physics it reports and controls.
        faults: The initial fault plan.
        timing: Settle and answer delays of the brand (default: the config's answer delay).
    """

    kind = "register_twin"

    def __init__(
        self, config: TwinEndpoint, *, physics: HomePhysics, faults: FaultPlan,
        timing: Timing | None = None,
    ) -> None:
        self.id = config.id
        self.host = config.host
        self.unit_id = config.unit_id
        self.timing = timing or Timing(answer_delay_s=config.answer_delay_s)
        self._physics = physics
        self._server = RegisterServer(self, config.unit_id, self.timing)
        self._front = ModbusFront(config.host, config.port, faults, f"{self.kind}-{config.id}")

    # --- the brand's map (subclasses) ---------------------------------------------------------

    @abstractmethod
    def blocks(self, table: Table) -> tuple[tuple[int, int], ...]:
        """Address ranges (first, last) the device answers in ``table``; elsewhere exception 2."""
        ...

    @abstractmethod
    def registers(self, table: Table) -> Mapping[int, int]:
        """The registers of ``table`` defined now (unlisted addresses inside a block read 0)."""
        ...

    @abstractmethod
    def store(self, address: int, values: list[int]) -> int | None:
        """Validate and apply a holding-register write; an exception code refuses all of it."""
        ...

    # --- RegisterDevice -----------------------------------------------------------------------

    def read(self, table: Table, address: int, count: int) -> list[int] | int:
        """Registers now, or exception 2 when the range leaves the device's blocks."""
        last = address + count - 1
        if not any(first <= address and last <= end for first, end in self.blocks(table)):
            return ILLEGAL_ADDRESS
        image = self.registers(table)
        return [image.get(a, 0) & 0xFFFF for a in range(address, last + 1)]

    def write(self, address: int, values: list[int]) -> int | None:
        """Apply a write unless the plan ignores writes (then acknowledged, nothing stored)."""
        if self.faults.ignore_writes:
            return None
        return self.store(address, values)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def ignored(self) -> int:
        """Requests left unanswered because they came inside the settle time after a connect."""
        return self._server.ignored

    async def start(self) -> None:
        """Listen; with port 0, ``port`` then holds the bound one."""
        upstream = await self._server.start(self.host)
        try:
            await self._front.start(upstream)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening and drop every connection (safe to call twice)."""
        await self._front.stop()
        await self._server.stop()



def split32(value: int, *, low_word_first: bool = False) -> tuple[int, int]:
    """A 32-bit two's complement value as two registers (high word first unless told)."""
    raw = int(value) & 0xFFFFFFFF
    high, low = raw >> 16, raw & 0xFFFF
    return (low, high) if low_word_first else (high, low)


def join32(first: int, second: int, *, low_word_first: bool = False, signed: bool = False) -> int:
    """Two registers as one 32-bit value."""
    high, low = (second, first) if low_word_first else (first, second)
    raw = (high << 16) | low
    return raw - (1 << 32) if signed and raw >= 1 << 31 else raw


def text_registers(text: str, words: int) -> list[int]:
    """ASCII/UTF-8 text as ``words`` registers, NUL padded."""
    data = text.encode()[: 2 * words].ljust(2 * words, b"\x00")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, 2 * words, 2)]
