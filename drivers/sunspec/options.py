"""The configuration keys of a SunSpec device (importable without its transport)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The inverter models' (101-103) vendor event bitfields, each a bitfield32 whose bits mean
#: whatever the manufacturer says they mean.
VENDOR_EVENT_POINTS = ("EvtVnd1", "EvtVnd2", "EvtVnd3", "EvtVnd4")


class VendorBit(BaseModel):
    """One bit of one vendor event point of the inverter model: exactly one key, e.g. ``{evtvnd1_bit: 0}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    evtvnd1_bit: int | None = Field(None, ge=0, le=31)
    evtvnd2_bit: int | None = Field(None, ge=0, le=31)
    evtvnd3_bit: int | None = Field(None, ge=0, le=31)
    evtvnd4_bit: int | None = Field(None, ge=0, le=31)

    @model_validator(mode="after")
    def _exactly_one(self) -> VendorBit:
        if len(self._set()) != 1:
            keys = ", ".join(f"evtvnd{n}_bit" for n in range(1, 5))
            raise ValueError(f"give exactly one of {keys} (a bit 0..31)")
        return self

    def _set(self) -> list[tuple[str, int]]:
        bits = (self.evtvnd1_bit, self.evtvnd2_bit, self.evtvnd3_bit, self.evtvnd4_bit)
        return [(point, bit) for point, bit in zip(VENDOR_EVENT_POINTS, bits, strict=True) if bit is not None]

    @property
    def point(self) -> str:
        """The event point, e.g. ``EvtVnd1``."""
        return self._set()[0][0]

    @property
    def mask(self) -> int:
        """The bit as a mask of the point's raw value."""
        return 1 << self._set()[0][1]


class SunSpecOptions(BaseModel):
    """Configuration of one SunSpec device.

    ``battery_sign``: 1 when the device's battery W (model 802) is + while discharging, -1 when +
    while charging. ``meter_sign``: 1 when the meter's W is + while importing. ``base_address``
    None probes 40000, 0, 50000 in that order. ``storm_alert``: the vendor event bit that means
    "storm watch" on this inverter (its manual says which, if any); unset, the device reports
    no storm alert and no ``storm_watch`` capability — SunSpec defines no such point, and a bit
    that means something else on another make would hold the battery full for nothing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255)
    timeout_s: float = Field(1.0, gt=0)
    confirm_timeout_s: float = Field(3.0, gt=0)
    battery_sign: Literal[1, -1] = 1
    meter_sign: Literal[1, -1] = 1
    base_address: int | None = Field(None, ge=0, le=65535)
    storm_alert: VendorBit | None = None
