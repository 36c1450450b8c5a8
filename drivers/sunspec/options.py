"""The configuration keys of a SunSpec device (importable without its transport)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SunSpecOptions(BaseModel):
    """Configuration of one SunSpec device.

    ``battery_sign``: 1 when the device's battery W (model 802) is + while discharging, -1 when +
    while charging. ``meter_sign``: 1 when the meter's W is + while importing. ``base_address``
    None probes 40000, 0, 50000 in that order.
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
