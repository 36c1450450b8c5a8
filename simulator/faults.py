"""Fault injection plan applied inside a simulated device's register access hook."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FaultPlan:
    """Misbehaviour a device shows to its Modbus clients (mutable: change it while serving).

    Attributes:
        ignore_writes: Acknowledge writes but neither store nor act on them.
        delay_s: Real seconds to wait before answering each request.
    """

    ignore_writes: bool = False
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_s < 0:
            raise ValueError("delay_s must be >= 0")
